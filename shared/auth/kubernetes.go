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

// Kubernetes authorizes with a TokenReview (who is it, for which audience) and
// SubjectAccessReviews (may it use this verb on auditevents, cluster-wide or in a namespace).
// Answers are cached for ttl per token and question, positive and negative alike, and
// concurrent identical checks share one review, so a burst costs one round trip to the API
// server.
type Kubernetes struct {
	clients   KubeClients
	audiences []string
	ttl       time.Duration
	now       func() time.Time
	// namespaces are probed for a reader without the cluster-wide right (AUTH_NAMESPACES).
	namespaces []string

	group singleflight.Group
	mu    sync.Mutex
	cache map[cacheKey]cacheEntry
}

type cacheKey struct {
	token [32]byte // SHA-256: the cache never holds a token
	// check is the question: "authn" (the TokenReview), else verb/subresource/namespace.
	check string
}

type cacheEntry struct {
	principal Principal
	user      authnv1.UserInfo
	err       error
	expires   time.Time
}

// NewKubernetes returns a Kubernetes authorizer.
func NewKubernetes(clients KubeClients, audiences []string, ttl time.Duration) *Kubernetes {
	return &Kubernetes{clients: clients, audiences: audiences, ttl: ttl, now: time.Now, cache: map[cacheKey]cacheEntry{}}
}

// WithNamespaces sets the namespaces a reader without the cluster-wide right is checked for
// when its request names none (AUTH_NAMESPACES), and returns k.
func (k *Kubernetes) WithNamespaces(ns []string) *Kubernetes {
	k.namespaces = ns
	return k
}

// Authorize checks token for action a, cluster-wide.
func (k *Kubernetes) Authorize(ctx context.Context, token string, a Action) (Principal, error) {
	return k.allowed(ctx, token, authzv1.ResourceAttributes{Verb: a.Verb()})
}

// allowed asks whether token's user may use attrs' verb (and subresource, in attrs' namespace)
// on auditevents.
func (k *Kubernetes) allowed(ctx context.Context, token string, attrs authzv1.ResourceAttributes) (Principal, error) {
	sum := sha256.Sum256([]byte(token))
	e := k.cached(ctx, cacheKey{sum, attrs.Verb + "/" + attrs.Subresource + "/" + attrs.Namespace}, func() cacheEntry {
		who := k.cached(ctx, cacheKey{sum, "authn"}, func() cacheEntry { return k.authenticate(ctx, token) })
		if who.err != nil {
			return who
		}
		return cacheEntry{principal: who.principal, err: k.access(ctx, who.principal, who.user, attrs)}
	})
	return e.principal, e.err
}

// cached answers key from the cache, or from review once for all concurrent askers. An outage
// is not an answer: it is never cached.
func (k *Kubernetes) cached(ctx context.Context, key cacheKey, review func() cacheEntry) cacheEntry {
	now := k.now()
	k.mu.Lock()
	if e, ok := k.cache[key]; ok && now.Before(e.expires) {
		k.mu.Unlock()
		return e
	}
	k.mu.Unlock()
	v, _, _ := k.group.Do(fmt.Sprintf("%x/%s", key.token, key.check), func() (any, error) {
		// A flight that ended between this caller's cache miss and its Do has filled the cache.
		k.mu.Lock()
		if e, ok := k.cache[key]; ok && now.Before(e.expires) {
			k.mu.Unlock()
			return e, nil
		}
		k.mu.Unlock()
		e := review()
		if errors.Is(e.err, ErrUnavailable) {
			return e, nil
		}
		e.expires = now.Add(k.ttl)
		k.mu.Lock()
		if len(k.cache) > 10000 {
			k.evictExpired(now)
		}
		k.cache[key] = e
		k.mu.Unlock()
		return e, nil
	})
	return v.(cacheEntry)
}

func (k *Kubernetes) evictExpired(now time.Time) {
	for key, e := range k.cache {
		if !now.Before(e.expires) {
			delete(k.cache, key)
		}
	}
}

// authenticate is the TokenReview: who the token's user is.
func (k *Kubernetes) authenticate(ctx context.Context, token string) cacheEntry {
	tr, err := k.clients.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token, Audiences: k.audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		return cacheEntry{err: apiError("TokenReview", err)}
	}
	if !tr.Status.Authenticated {
		return cacheEntry{err: fmt.Errorf("%w: token rejected: %s", ErrUnauthenticated, tr.Status.Error)}
	}
	// An audience-aware API server echoes the audiences the token is valid for; when we asked
	// for some, one of them must come back (authentication/v1 TokenReviewStatus.audiences).
	if len(k.audiences) > 0 && !slices.ContainsFunc(tr.Status.Audiences, func(aud string) bool { return slices.Contains(k.audiences, aud) }) {
		return cacheEntry{err: fmt.Errorf("%w: token is not meant for audiences %v", ErrUnauthenticated, k.audiences)}
	}
	return cacheEntry{principal: Principal{Name: tr.Status.User.Username}, user: tr.Status.User}
}

// access is the SubjectAccessReview of attrs on auditevents.auditstore.dev for user.
func (k *Kubernetes) access(ctx context.Context, p Principal, user authnv1.UserInfo, attrs authzv1.ResourceAttributes) error {
	extra := map[string]authzv1.ExtraValue{}
	for key, v := range user.Extra {
		extra[key] = authzv1.ExtraValue(v)
	}
	attrs.Group, attrs.Resource = ResourceGroup, Resource
	sar, err := k.clients.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authzv1.SubjectAccessReview{
		Spec: authzv1.SubjectAccessReviewSpec{
			User: user.Username, Groups: user.Groups, UID: user.UID, Extra: extra, ResourceAttributes: &attrs,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		return apiError("SubjectAccessReview", err)
	}
	if !sar.Status.Allowed || sar.Status.Denied {
		what := Resource
		if attrs.Subresource != "" {
			what += "/" + attrs.Subresource
		}
		where := ""
		if attrs.Namespace != "" {
			where = " in namespace " + attrs.Namespace
		}
		return fmt.Errorf("%w: %s may not %s %s.%s%s: %s", ErrForbidden, p.Name, attrs.Verb, what, ResourceGroup, where, sar.Status.Reason)
	}
	return nil
}

// apiError: the API server did not answer the review. That is an outage (503), never a 401 and
// never a silent allow; only an explicit refusal of our own rights is reported as such.
func apiError(what string, err error) error {
	if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
		return fmt.Errorf("%w: %s refused to auditstore itself (check its RBAC: system:auth-delegator): %v", ErrUnavailable, what, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
}
