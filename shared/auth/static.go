package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// tokenFile is the AUTH_TOKENS_FILE format (YAML):
//
//	tokens:
//	  - principal: gateway
//	    roles: [writer]
//	    token_sha256: 5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8
//	  - principal: auditor
//	    roles: [reader]
//	    token: a-plain-token   # allowed, but a hash keeps the file harmless if read
//	  - principal: team-a-oncall
//	    roles: [reader]
//	    namespaces: [team-a]   # reads only the events of these namespaces
//	    token_sha256: ...
type tokenFile struct {
	Tokens []struct {
		Principal   string   `yaml:"principal"`
		Roles       []string `yaml:"roles"`
		Namespaces  []string `yaml:"namespaces"`
		Token       string   `yaml:"token"`
		TokenSHA256 string   `yaml:"token_sha256"`
	} `yaml:"tokens"`
}

type staticEntry struct {
	hash      [32]byte
	principal string
	rights    map[Action]bool
	// namespaces limit its reads to these namespaces' events (none: every event).
	namespaces []string
	// sensitive lets it read sensitive events whole (roles sensitive-reader, admin).
	sensitive bool
}

// Static authorizes tokens listed in a file, reloading it when it changes.
type Static struct {
	path string

	mu      sync.RWMutex
	entries []staticEntry
	modTime time.Time
	size    int64
	checked time.Time
}

// roleRights maps the static roles to the actions they allow. sensitive-reader reads, and
// reads sensitive events whole.
var roleRights = map[string][]Action{
	"writer":           {Write},
	"reader":           {Read},
	"sensitive-reader": {Read},
	"admin":            {Write, Read, Admin},
}

// roleNames lists the roles for messages.
const roleNames = "writer, reader, sensitive-reader, admin"

// NewStatic loads the token file at path.
func NewStatic(path string) (*Static, error) {
	s := &Static{path: path}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// Authorize checks token for action a: a token that names namespaces has no cluster-wide
// right to read (it reads through AuthorizeRead).
func (s *Static) Authorize(_ context.Context, token string, a Action) (Principal, error) {
	e, err := s.entry(token)
	if err != nil {
		return Principal{}, err
	}
	p := Principal{Name: e.principal}
	if !e.rights[a] || a == Read && len(e.namespaces) > 0 {
		return p, fmt.Errorf("%w: %s has no role allowing %s", ErrForbidden, p.Name, a)
	}
	return p, nil
}

// entry finds token's entry, comparing its SHA-256 with every entry in constant time, so
// neither the match nor its position leaks through timing.
func (s *Static) entry(token string) (staticEntry, error) {
	s.reloadIfChanged()
	sum := sha256.Sum256([]byte(token))
	s.mu.RLock()
	defer s.mu.RUnlock()
	var match *staticEntry
	for i := range s.entries {
		if subtle.ConstantTimeCompare(sum[:], s.entries[i].hash[:]) == 1 {
			match = &s.entries[i]
		}
	}
	if match == nil {
		return staticEntry{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	return *match, nil
}

// reloadIfChanged re-reads the file at most once a second when its size or modification time
// changed. A file that no longer parses keeps the previous tokens in force (and is logged), so
// a half-written edit never locks everyone out or lets anyone in.
func (s *Static) reloadIfChanged() {
	s.mu.RLock()
	due := time.Since(s.checked) >= time.Second
	s.mu.RUnlock()
	if !due {
		return
	}
	fi, err := os.Stat(s.path)
	s.mu.Lock()
	s.checked = time.Now()
	changed := err == nil && (!fi.ModTime().Equal(s.modTime) || fi.Size() != s.size)
	s.mu.Unlock()
	if changed {
		if err := s.load(); err != nil {
			slog.Error("AUTH_TOKENS_FILE not reloaded; the previous tokens stay in force", "error", err)
		}
	}
}

func (s *Static) load() error {
	fi, err := os.Stat(s.path)
	if err != nil {
		return fmt.Errorf("AUTH_TOKENS_FILE: %w", err)
	}
	raw, err := os.ReadFile(s.path)
	if err != nil {
		return fmt.Errorf("AUTH_TOKENS_FILE: %w", err)
	}
	var f tokenFile
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return fmt.Errorf("AUTH_TOKENS_FILE %s: %w", s.path, err)
	}
	entries := make([]staticEntry, 0, len(f.Tokens))
	for i, t := range f.Tokens {
		e := staticEntry{principal: t.Principal, rights: map[Action]bool{}, namespaces: slices.Clone(t.Namespaces)}
		if slices.Contains(e.namespaces, "") {
			return fmt.Errorf("AUTH_TOKENS_FILE entry %d (%s): a namespace must not be empty", i, t.Principal)
		}
		switch {
		case t.Principal == "":
			return fmt.Errorf("AUTH_TOKENS_FILE entry %d: principal is required", i)
		case (t.Token == "") == (t.TokenSHA256 == ""):
			return fmt.Errorf("AUTH_TOKENS_FILE entry %d (%s): give exactly one of token and token_sha256", i, t.Principal)
		case t.Token != "":
			e.hash = sha256.Sum256([]byte(t.Token))
		default:
			b, err := hex.DecodeString(t.TokenSHA256)
			if err != nil || len(b) != 32 {
				return fmt.Errorf("AUTH_TOKENS_FILE entry %d (%s): token_sha256 must be 64 hexadecimal digits", i, t.Principal)
			}
			copy(e.hash[:], b)
		}
		if len(t.Roles) == 0 {
			return fmt.Errorf("AUTH_TOKENS_FILE entry %d (%s): roles are required (%s)", i, t.Principal, roleNames)
		}
		for _, role := range t.Roles {
			rights, ok := roleRights[role]
			if !ok {
				return fmt.Errorf("AUTH_TOKENS_FILE entry %d (%s): role %q is not one of %s", i, t.Principal, role, roleNames)
			}
			e.sensitive = e.sensitive || role == "sensitive-reader" || role == "admin"
			for _, r := range rights {
				e.rights[r] = true
			}
		}
		if slices.ContainsFunc(entries, func(o staticEntry) bool { return o.hash == e.hash }) {
			return fmt.Errorf("AUTH_TOKENS_FILE entry %d (%s): the same token is listed twice", i, t.Principal)
		}
		entries = append(entries, e)
	}
	s.mu.Lock()
	s.entries, s.modTime, s.size = entries, fi.ModTime(), fi.Size()
	s.mu.Unlock()
	return nil
}
