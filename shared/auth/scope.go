package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/auditstore/auditstore/shared/web"
	authzv1 "k8s.io/api/authorization/v1"
)

// SensitiveSubresource is the subresource of auditevents whose get verb lets a reader see the
// withheld members of sensitive events (kubernetes mode).
const SensitiveSubresource = "sensitive"

// Scope is what a reader may see. A reader holds either the cluster-wide right (every event)
// or the right in some namespaces (the events of those namespaces only: an event without a
// namespace needs the cluster-wide right). Sensitive says whether it sees what a sensitive
// event withholds from others (event_data, error_message, resource_name).
type Scope struct {
	// Cluster is the right to read every event.
	Cluster bool
	// Namespaces are, without Cluster, the namespaces whose events the reader may read, as far
	// as they are known when the request starts.
	Namespaces []string
	// Sensitive is the right to read sensitive events whole.
	Sensitive bool

	// more asks whether one namespace beyond Namespaces is allowed (kubernetes mode: a
	// reader getting one event by id from a namespace its request did not name); nil: none is.
	more func(ctx context.Context, namespace string) (bool, error)
}

// FullScope is the scope of a reader who may read everything (AUTH_MODE=none, admins).
var FullScope = Scope{Cluster: true, Sensitive: true}

// Allows reports whether the reader may read an event of namespace ("" for none).
func (s Scope) Allows(ctx context.Context, namespace string) (bool, error) {
	switch {
	case s.Cluster:
		return true, nil
	case namespace == "":
		return false, nil
	case slices.Contains(s.Namespaces, namespace):
		return true, nil
	case s.more != nil:
		return s.more(ctx, namespace)
	}
	return false, nil
}

// ReadAuthorizer is an Authorizer that also tells a reader's Scope. named are the namespaces
// the request names (its namespace filter): each must be allowed, or the request is refused.
type ReadAuthorizer interface {
	AuthorizeRead(ctx context.Context, token string, named []string) (Principal, Scope, error)
}

type scopeKey struct{}

// ScopeFrom returns the scope ReadMiddleware found for this request; a request it did not
// authorize (an Authorizer without scopes) reads with FullScope.
func ScopeFrom(ctx context.Context) Scope {
	if s, ok := ctx.Value(scopeKey{}).(Scope); ok {
		return s
	}
	return FullScope
}

// WithScope returns ctx carrying s (for tests and internal callers).
func WithScope(ctx context.Context, s Scope) context.Context {
	return context.WithValue(ctx, scopeKey{}, s)
}

// ReadMiddleware is Middleware for reads: when az tells scopes (ReadAuthorizer), a reader with
// the right in some namespaces only gets through, with its Scope in the request's context; the
// namespaces its query's namespace parameter names must each be allowed (403 naming them).
func ReadMiddleware(az Authorizer, m *Metrics) func(http.Handler) http.Handler {
	ra, ok := az.(ReadAuthorizer)
	if !ok {
		return Middleware(az, Read, m)
	}
	return middleware(Read, m, Principal{}, nil, func(r *http.Request) (Principal, context.Context, error) {
		token := "" // AUTH_MODE=none needs none
		if _, none := az.(None); !none {
			var err error
			if token, err = bearer(r); err != nil {
				return Principal{}, r.Context(), err
			}
		}
		var named []string
		if q, err := web.Query(r); err == nil {
			named = q["namespace"] // a query that does not parse is refused by its handler
		}
		p, s, err := ra.AuthorizeRead(r.Context(), token, named)
		return p, WithScope(r.Context(), s), err
	})
}

// namespaceError refuses a reader without the cluster-wide right the namespaces its request
// named (none: it named none it may read). Its text is shown to the caller: it names only what
// the caller sent.
type namespaceError struct {
	principal  string
	namespaces []string
}

func (e *namespaceError) Error() string {
	if len(e.namespaces) == 0 {
		return fmt.Sprintf("%s may not read audit events cluster-wide; a reader of some namespaces names them with the namespace parameter", e.principal)
	}
	return fmt.Sprintf("%s may not read audit events in namespace %s", e.principal, strings.Join(e.namespaces, ", "))
}

func (e *namespaceError) Unwrap() error { return ErrForbidden }

// namespacedScope decides the scope of a reader without the cluster-wide right: the named
// namespaces must each be allowed, and of named and probe together at least one.
func namespacedScope(ctx context.Context, p Principal, named, probe []string, allowed func(context.Context, string) (bool, error)) (Scope, error) {
	var s Scope
	var refused []string
	for _, ns := range named {
		ok, err := allowed(ctx, ns)
		if err != nil {
			return Scope{}, err
		}
		if !ok {
			refused = append(refused, ns)
		} else if !slices.Contains(s.Namespaces, ns) {
			s.Namespaces = append(s.Namespaces, ns)
		}
	}
	if len(refused) > 0 {
		return Scope{}, &namespaceError{p.Name, refused}
	}
	for _, ns := range probe {
		if len(named) > 0 {
			break // the request is about the namespaces it names
		}
		ok, err := allowed(ctx, ns)
		if err != nil {
			return Scope{}, err
		}
		if ok && !slices.Contains(s.Namespaces, ns) {
			s.Namespaces = append(s.Namespaces, ns)
		}
	}
	if len(s.Namespaces) == 0 {
		return Scope{}, &namespaceError{principal: p.Name}
	}
	slices.Sort(s.Namespaces)
	return s, nil
}

// AuthorizeRead checks token for reading: the cluster-wide list right, else list in the
// namespaces the request names (or, naming none, those of AUTH_NAMESPACES); and get on
// auditevents/sensitive, cluster-wide, for sensitive events.
func (k *Kubernetes) AuthorizeRead(ctx context.Context, token string, named []string) (Principal, Scope, error) {
	p, err := k.allowed(ctx, token, authzv1.ResourceAttributes{Verb: Read.Verb()})
	var s Scope
	switch {
	case err == nil:
		s.Cluster = true
	case !errors.Is(err, ErrForbidden):
		return p, Scope{}, err
	default:
		in := func(ctx context.Context, ns string) (bool, error) {
			_, err := k.allowed(ctx, token, authzv1.ResourceAttributes{Verb: Read.Verb(), Namespace: ns})
			if errors.Is(err, ErrForbidden) {
				return false, nil
			}
			return err == nil, err
		}
		if s, err = namespacedScope(ctx, p, named, k.namespaces, in); err != nil {
			return p, Scope{}, err
		}
		s.more = in
	}
	_, err = k.allowed(ctx, token, authzv1.ResourceAttributes{Verb: "get", Subresource: SensitiveSubresource})
	switch {
	case err == nil:
		s.Sensitive = true
	case !errors.Is(err, ErrForbidden):
		return p, Scope{}, err
	}
	return p, s, nil
}

// AuthorizeRead checks token for reading: a token that names namespaces reads only those; the
// sensitive-reader and admin roles read sensitive events whole.
func (s *Static) AuthorizeRead(_ context.Context, token string, named []string) (Principal, Scope, error) {
	e, err := s.entry(token)
	if err != nil {
		return Principal{}, Scope{}, err
	}
	p := Principal{Name: e.principal}
	if !e.rights[Read] {
		return p, Scope{}, fmt.Errorf("%w: %s has no role allowing %s", ErrForbidden, p.Name, Read)
	}
	sc := Scope{Cluster: len(e.namespaces) == 0, Sensitive: e.sensitive}
	if !sc.Cluster {
		if refused := slices.DeleteFunc(slices.Clone(named), func(ns string) bool { return slices.Contains(e.namespaces, ns) }); len(refused) > 0 {
			return p, Scope{}, &namespaceError{p.Name, refused}
		}
		sc.Namespaces = e.namespaces
	}
	return p, sc, nil
}

// AuthorizeRead allows everything, as anonymous.
func (None) AuthorizeRead(context.Context, string, []string) (Principal, Scope, error) {
	return Principal{Name: "anonymous"}, FullScope, nil
}
