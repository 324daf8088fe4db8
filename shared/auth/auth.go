// Package auth decides who a caller is and what it may do (README "Identity and limits"):
// a Bearer token checked by Kubernetes (TokenReview, then SubjectAccessReview), by a static
// token file, or not at all (local use); and a per-principal rate limit counted in events.
package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/auditstore/auditstore/shared/web"
	"github.com/prometheus/client_golang/prometheus"
)

// Action is what a request wants to do with audit events.
type Action int

// The three rights of README "Identity and limits".
const (
	// Write stores events (Kubernetes verb create, static role writer).
	Write Action = iota + 1
	// Read queries, gets and exports events (verb list, role reader).
	Read
	// Admin administers: maintenance, legal holds (verb update, role admin).
	Admin
)

// Verb is the Kubernetes verb a SubjectAccessReview asks for.
func (a Action) Verb() string {
	switch a {
	case Write:
		return "create"
	case Read:
		return "list"
	case Admin:
		return "update"
	}
	return "unknown"
}

func (a Action) String() string {
	switch a {
	case Write:
		return "write"
	case Read:
		return "read"
	case Admin:
		return "admin"
	}
	return "unknown"
}

// Principal is an authenticated caller.
type Principal struct {
	// Name is the caller's identity: it becomes submitted_by.
	Name string
}

// Errors an Authorizer returns; Middleware maps them to 401, 403 and 503.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
	ErrUnavailable     = errors.New("authorization backend unavailable")
)

// Authorizer authenticates a token and checks one right.
type Authorizer interface {
	Authorize(ctx context.Context, token string, a Action) (Principal, error)
}

// Config is the identity configuration, read from the environment.
type Config struct {
	// Mode is kubernetes (TokenReview + SubjectAccessReview), static (a token file) or none
	// (local use: every caller is anonymous).
	Mode string `envconfig:"AUTH_MODE" default:"kubernetes"`
	// Audiences, in kubernetes mode, are the audiences a token must be meant for (empty: the
	// API server's own).
	Audiences []string `envconfig:"AUTH_AUDIENCES"`
	// CacheTTL is how long a review's answer, positive or negative, is reused for a token.
	CacheTTL time.Duration `envconfig:"AUTH_CACHE_TTL" default:"10s"`
	// Namespaces, in kubernetes mode, are the namespaces a reader without the cluster-wide
	// right is checked for (a SubjectAccessReview each, cached) when its request names none:
	// it then reads the events of those it may list.
	Namespaces []string `envconfig:"AUTH_NAMESPACES"`
	// TokensFile, in static mode, is the token file (reloaded when it changes).
	TokensFile string `envconfig:"AUTH_TOKENS_FILE"`
	// RateLimit is the events per second each principal may write (per instance).
	RateLimit float64 `envconfig:"RATE_LIMIT_EVENTS_PER_SEC" default:"500"`
	// RateBurst is how many events a principal may write at once above the rate.
	RateBurst int `envconfig:"RATE_LIMIT_BURST" default:"1000"`
	// RateMaxWait is how long a write over the limit is held for the principal's budget to
	// admit it before it is refused with 429 (0: refused at once).
	RateMaxWait time.Duration `envconfig:"RATE_LIMIT_MAX_WAIT" default:"2s"`
}

// None is the Authorizer of AUTH_MODE=none: everyone is anonymous and may do everything.
type None struct{}

// Authorize always allows, as anonymous.
func (None) Authorize(context.Context, string, Action) (Principal, error) {
	return Principal{Name: "anonymous"}, nil
}

type principalKey struct{}

// PrincipalFrom returns the principal Middleware authorized for this request.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// WithPrincipal returns ctx carrying p (for tests and internal callers).
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// Metrics count authorization outcomes.
type Metrics struct {
	decisions *prometheus.CounterVec
}

// NewMetrics registers auth_requests_total{action,result} with reg (nil: none).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return newMetrics(reg)
}

// Decisions is auth_requests_total.
func (m *Metrics) Decisions() *prometheus.CounterVec { return m.decisions }

func newMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{decisions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "auth_requests_total",
		Help: "Authorization decisions, by action (write, read, admin) and result (allowed, unauthenticated, forbidden, unavailable, admitted_unauthenticated: a broker delivery or dead letter let through without a verified token).",
	}, []string{"action", "result"})}
	if reg != nil {
		reg.MustRegister(m.decisions)
	}
	return m
}

// Middleware lets a request through only when its Bearer token grants a, with the principal
// in its context. Missing, malformed or rejected tokens get 401 with WWW-Authenticate; a
// token without the right gets 403; an unreachable authorization backend 503. No other
// header (X-Forwarded-User, X-Auth-Request-User, ...) ever changes the principal.
func Middleware(az Authorizer, a Action, m *Metrics) func(http.Handler) http.Handler {
	return middleware(a, m, Principal{}, nil, checkToken(az, a))
}

// BrokerUnauthenticated is the principal of a delivery admitted without a verified token
// (WithoutToken, Unrefused): submitted_by says it came through the broker unauthenticated.
const BrokerUnauthenticated = "knative-broker:unauthenticated"

// WithoutToken is Middleware for a route a broker delivers to without sender identity: a
// request with no Authorization header at all is let through as principal as; one with a
// token is checked as Middleware checks it (a bad token is still a 401).
func WithoutToken(az Authorizer, a Action, m *Metrics, as Principal) func(http.Handler) http.Handler {
	return middleware(a, m, as, func(err error) bool { return errors.Is(err, errNoToken) }, checkToken(az, a))
}

// Unrefused is Middleware that never refuses: a request whose token grants a has its
// principal, any other (no token, a rejected one, no right, the backend unreachable) is let
// through as principal as. For a quarantine such as the dead-letter sink, where what arrives
// is kept apart and trusted by no one, and refusing would lose it.
func Unrefused(az Authorizer, a Action, m *Metrics, as Principal) func(http.Handler) http.Handler {
	return middleware(a, m, as, func(error) bool { return true }, checkToken(az, a))
}

// errNoToken is the ErrUnauthenticated of a request without an Authorization header.
var errNoToken = fmt.Errorf("%w: no Authorization header", ErrUnauthenticated)

// checkToken is the check of Middleware: the request's token must grant a.
func checkToken(az Authorizer, a Action) func(r *http.Request) (Principal, context.Context, error) {
	return func(r *http.Request) (Principal, context.Context, error) {
		p, err := authorize(r, az, a)
		return p, r.Context(), err
	}
}

// middleware answers a request check refuses, unless admit(err) lets it through as principal
// as, and passes on the others with the principal and the context check made.
func middleware(a Action, m *Metrics, as Principal, admit func(error) bool, check func(r *http.Request) (Principal, context.Context, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		// The counter of the common decision, made at the first one (so the series appears
		// only once counted, as the others): WithLabelValues hashes its labels on every call.
		var allowed atomic.Pointer[prometheus.Counter]
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ctx, err := check(r)
			result := "allowed"
			if err != nil && admit != nil && admit(err) {
				p, err, result = as, nil, "admitted_unauthenticated"
			}
			if p.Name != "" {
				web.SetPrincipal(r.Context(), p.Name)
			}
			switch {
			case errors.Is(err, ErrUnauthenticated):
				result = "unauthenticated"
				w.Header().Set("WWW-Authenticate", `Bearer realm="auditstore"`)
				web.WriteError(w, r, web.Error(http.StatusUnauthorized, "a valid Bearer token is required", err))
			case errors.Is(err, ErrForbidden):
				result = "forbidden"
				web.WriteError(w, r, web.Error(http.StatusForbidden, forbiddenDetail(p, a, err), err))
			case err != nil:
				result = "unavailable"
				web.WriteError(w, r, web.Unavailable("authorization is unavailable; retry later", 5*time.Second, err))
			}
			switch {
			case m == nil:
			case result == "allowed":
				c := allowed.Load()
				if c == nil { // two first requests at once both get the same child: harmless
					counter := m.decisions.WithLabelValues(a.String(), result)
					c = &counter
					allowed.Store(c)
				}
				(*c).Inc()
			default:
				m.decisions.WithLabelValues(a.String(), result).Inc()
			}
			if err == nil {
				next.ServeHTTP(w, r.WithContext(WithPrincipal(ctx, p)))
			}
		})
	}
}

// forbiddenDetail tells a caller without the right what it lacks; a reader refused for the
// namespaces it named learns which (it named them itself).
func forbiddenDetail(p Principal, a Action, err error) string {
	var ns *namespaceError
	if errors.As(err, &ns) {
		return ns.Error()
	}
	return fmt.Sprintf("%s may not %s audit events", p.Name, a)
}

func authorize(r *http.Request, az Authorizer, a Action) (Principal, error) {
	if _, ok := az.(None); ok {
		return az.Authorize(r.Context(), "", a)
	}
	token, err := bearer(r)
	if err != nil {
		return Principal{}, err
	}
	return az.Authorize(r.Context(), token, a)
}

// bearer is the request's Bearer token.
func bearer(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", errNoToken
	}
	scheme, token, ok := strings.Cut(h, " ")
	token = strings.TrimSpace(token)
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") || token == "" || strings.ContainsAny(token, " \t") {
		return "", fmt.Errorf("%w: missing or malformed Authorization header", ErrUnauthenticated)
	}
	return token, nil
}

// New returns the Authorizer cfg.Mode names. kube builds the Kubernetes clients when the mode
// needs them (nil: from the in-cluster configuration).
func New(cfg Config, kube func() (KubeClients, error)) (Authorizer, error) {
	switch cfg.Mode {
	case "none":
		slog.Warn("AUTH_MODE=none: every caller is anonymous and may do everything; for local use only")
		return None{}, nil
	case "static":
		if cfg.TokensFile == "" {
			return nil, errors.New("AUTH_MODE=static needs AUTH_TOKENS_FILE")
		}
		return NewStatic(cfg.TokensFile)
	case "kubernetes":
		if kube == nil {
			kube = InClusterClients
		}
		clients, err := kube()
		if err != nil {
			return nil, fmt.Errorf("AUTH_MODE=kubernetes: %w", err)
		}
		return NewKubernetes(clients, cfg.Audiences, cfg.CacheTTL).WithNamespaces(cfg.Namespaces), nil
	}
	return nil, fmt.Errorf("AUTH_MODE %q is not one of kubernetes, static, none", cfg.Mode)
}

// Kit is what a function needs of identity: the authorizer, its metrics and the write rate
// limiter, made from one Config.
type Kit struct {
	Authorizer Authorizer
	Metrics    *Metrics
	Limiter    *RateLimiter
}

// Setup checks cfg and builds the Kit, registering the metrics with reg.
func Setup(cfg Config, reg prometheus.Registerer) (Kit, error) {
	if cfg.RateLimit <= 0 || cfg.RateBurst < 1 {
		return Kit{}, errors.New("RATE_LIMIT_EVENTS_PER_SEC must be positive and RATE_LIMIT_BURST at least 1")
	}
	if cfg.RateMaxWait < 0 || cfg.RateMaxWait > time.Minute {
		// A held request keeps its connection and its client waiting: beyond a minute, clients
		// and proxies time out first.
		return Kit{}, errors.New("RATE_LIMIT_MAX_WAIT must be between 0 and 1m")
	}
	if cfg.CacheTTL < 0 {
		return Kit{}, errors.New("AUTH_CACHE_TTL must not be negative")
	}
	az, err := New(cfg, nil)
	if err != nil {
		return Kit{}, err
	}
	return Kit{Authorizer: az, Metrics: NewMetrics(reg), Limiter: NewRateLimiter(cfg.RateLimit, cfg.RateBurst, cfg.RateMaxWait)}, nil
}
