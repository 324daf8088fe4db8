package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	authnv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// The resource whose verbs grant rights (README "Identity and limits").
const (
	ResourceGroup = "auditstore.dev"
	Resource      = "auditevents"
)

// KubeClients are the Kubernetes APIs the kubernetes mode calls.
type KubeClients = kubernetes.Interface

// InClusterClients builds clients from the pod's service account.
func InClusterClients() (KubeClients, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// Kubernetes authorizes with a TokenReview (who is it, for which audience) and a
// SubjectAccessReview (may it use this verb on auditevents). Answers are cached for ttl per
// token and action, positive and negative alike, and concurrent identical checks share one
// review, so a burst costs one round trip to the API server.
type Kubernetes struct {
	clients   KubeClients
	audiences []string
	ttl       time.Duration
	now       func() time.Time

	group singleflight.Group
	mu    sync.Mutex
	cache map[cacheKey]cacheEntry
}

type cacheKey struct {
	token  [32]byte // SHA-256: the cache never holds a token
	action Action
}

type cacheEntry struct {
	principal Principal
	err       error
	expires   time.Time
}

// NewKubernetes returns a Kubernetes authorizer.
func NewKubernetes(clients KubeClients, audiences []string, ttl time.Duration) *Kubernetes {
	return &Kubernetes{clients: clients, audiences: audiences, ttl: ttl, now: time.Now, cache: map[cacheKey]cacheEntry{}}
}

// Authorize checks token for action a.
func (k *Kubernetes) Authorize(ctx context.Context, token string, a Action) (Principal, error) {
	key := cacheKey{token: sha256.Sum256([]byte(token)), action: a}
	now := k.now()
	k.mu.Lock()
	if e, ok := k.cache[key]; ok && now.Before(e.expires) {
		k.mu.Unlock()
		return e.principal, e.err
	}
	k.mu.Unlock()

	v, err, _ := k.group.Do(fmt.Sprintf("%x/%d", key.token, a), func() (any, error) {
		// A flight that ended between this caller's cache miss and its Do has filled the cache.
		k.mu.Lock()
		if e, ok := k.cache[key]; ok && now.Before(e.expires) {
			k.mu.Unlock()
			return e.principal, e.err
		}
		k.mu.Unlock()
		p, err := k.review(ctx, token, a)
		if errors.Is(err, ErrUnavailable) {
			return p, err // an outage is not an answer: never cached
		}
		k.mu.Lock()
		if len(k.cache) > 10000 {
			k.evictExpired(now)
		}
		k.cache[key] = cacheEntry{principal: p, err: err, expires: now.Add(k.ttl)}
		k.mu.Unlock()
		return p, err
	})
	p, _ := v.(Principal)
	return p, err
}

func (k *Kubernetes) evictExpired(now time.Time) {
	for key, e := range k.cache {
		if !now.Before(e.expires) {
			delete(k.cache, key)
		}
	}
}

func (k *Kubernetes) review(ctx context.Context, token string, a Action) (Principal, error) {
	tr, err := k.clients.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: k.audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return Principal{}, apiError("TokenReview", err)
	}
	if !tr.Status.Authenticated {
		return Principal{}, fmt.Errorf("%w: token rejected: %s", ErrUnauthenticated, tr.Status.Error)
	}
	// An audience-aware API server echoes the audiences the token is valid for; when we asked
	// for some, one of them must come back (authentication/v1 TokenReviewStatus.audiences).
	if len(k.audiences) > 0 && !slices.ContainsFunc(tr.Status.Audiences, func(aud string) bool { return slices.Contains(k.audiences, aud) }) {
		return Principal{}, fmt.Errorf("%w: token is not meant for audiences %v", ErrUnauthenticated, k.audiences)
	}
	user := tr.Status.User
	p := Principal{Name: user.Username}
	extra := map[string]authzv1.ExtraValue{}
	for key, v := range user.Extra {
		extra[key] = authzv1.ExtraValue(v)
	}
	sar, err := k.clients.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{
		Spec: authzv1.SubjectAccessReviewSpec{
			User: user.Username, Groups: user.Groups, UID: user.UID, Extra: extra,
			ResourceAttributes: &authzv1.ResourceAttributes{Group: ResourceGroup, Resource: Resource, Verb: a.Verb()},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return p, apiError("SubjectAccessReview", err)
	}
	if !sar.Status.Allowed || sar.Status.Denied {
		return p, fmt.Errorf("%w: %s may not %s %s.%s: %s", ErrForbidden, p.Name, a.Verb(), Resource, ResourceGroup, sar.Status.Reason)
	}
	return p, nil
}

// apiError: the API server did not answer the review. That is an outage (503), never a 401 and
// never a silent allow; only an explicit refusal of our own rights is reported as such.
func apiError(what string, err error) error {
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		return fmt.Errorf("%w: %s refused to auditstore itself (check its RBAC: system:auth-delegator): %v", ErrUnavailable, what, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
}
