package jobmanager

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/drover-run/drover/internal/obs"
	"github.com/drover-run/drover/pkg/api"
)

// Role is what an HTTP caller may do. Each role includes the ones below it.
type Role int

// Roles of the HTTP API, weakest first.
const (
	RoleNone   Role = iota
	RoleRead        // GET: jobs, workers, nodes, events, the console's pages
	RoleSubmit      // + submit, cancel, forwarded routes of any method
	RoleAdmin       // + everything later added for operators; today as submit
)

var roleNames = map[string]Role{"none": RoleNone, "read": RoleRead, "submit": RoleSubmit, "admin": RoleAdmin}

func (r Role) String() string {
	for n, v := range roleNames {
		if v == r {
			return n
		}
	}
	return "unknown"
}

// ParseRole reads a role name.
func ParseRole(s string) (Role, error) {
	r, ok := roleNames[s]
	if !ok {
		return RoleNone, fmt.Errorf("role %q: want none, read, submit or admin", s)
	}
	return r, nil
}

// minTokenLen keeps guessable tokens out of a configuration.
const minTokenLen = 16

// httpAuth is who may call the HTTP listener. Tokens are kept as their
// SHA-256, so a lookup compares digests, not the secret byte by byte.
type httpAuth struct {
	tokens    map[[32]byte]Role
	anonymous Role
}

// httpAuth builds the token table from DROVER_HTTP_TOKENS_FILE and
// DROVER_HTTP_TOKENS; errors name the line, never the token.
func (c *Config) httpAuth() (*httpAuth, error) {
	a := &httpAuth{tokens: map[[32]byte]Role{}}
	add := func(where, role, token string) error {
		r, err := ParseRole(role)
		if err != nil || r == RoleNone {
			return fmt.Errorf("%s: role %q: want read, submit or admin", where, role)
		}
		if len(token) < minTokenLen || strings.ContainsFunc(token, func(c rune) bool { return c <= ' ' || c > '~' }) {
			return fmt.Errorf("%s: a token must be at least %d printable ASCII characters without spaces", where, minTokenLen)
		}
		a.tokens[sha256.Sum256([]byte(token))] = r
		return nil
	}
	if c.HTTPTokensFile != "" {
		b, err := os.ReadFile(c.HTTPTokensFile)
		if err != nil {
			return nil, fmt.Errorf("DROVER_HTTP_TOKENS_FILE: %w", err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			f := strings.Fields(line)
			if len(f) != 2 {
				return nil, fmt.Errorf("DROVER_HTTP_TOKENS_FILE line %d: want \"<role> <token>\"", n)
			}
			if err := add(fmt.Sprintf("DROVER_HTTP_TOKENS_FILE line %d", n), f[0], f[1]); err != nil {
				return nil, err
			}
		}
	}
	if c.HTTPTokens != "" {
		for i, pair := range strings.Split(c.HTTPTokens, ",") {
			role, token, ok := strings.Cut(strings.TrimSpace(pair), ":")
			if !ok {
				return nil, fmt.Errorf("DROVER_HTTP_TOKENS entry %d: want \"<role>:<token>\"", i+1)
			}
			if err := add(fmt.Sprintf("DROVER_HTTP_TOKENS entry %d", i+1), role, token); err != nil {
				return nil, err
			}
		}
	}
	switch {
	case c.HTTPAnonymous != "":
		r, err := ParseRole(c.HTTPAnonymous)
		if err != nil {
			return nil, fmt.Errorf("DROVER_HTTP_ANONYMOUS: %v", err)
		}
		a.anonymous = r
	case len(a.tokens) == 0:
		a.anonymous = RoleRead
	default:
		a.anonymous = RoleNone
	}
	return a, nil
}

// tokenCookie carries the console's token; it is sent to /ui/ only.
const tokenCookie = "drover_token"

// caller is who made a request, as the handlers see it.
type caller struct {
	role  Role
	known bool // a valid token was presented
}

type callerKey struct{}

func callerOf(ctx context.Context) caller {
	c, _ := ctx.Value(callerKey{}).(caller)
	return c
}

// identify finds the caller of r. bad is set when a credential was
// presented and is not valid (answered 401 whatever the anonymous role).
func (a *httpAuth) identify(r *http.Request) (c caller, bad bool) {
	token := ""
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, t, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(t) == "" {
			return caller{role: a.anonymous}, true
		}
		token = strings.TrimSpace(t)
	} else if strings.HasPrefix(r.URL.Path, uiRoot) {
		if ck, err := r.Cookie(tokenCookie); err == nil && ck.Value != "" {
			token = ck.Value
		}
	}
	if token == "" {
		return caller{role: a.anonymous}, false
	}
	role, ok := a.tokens[sha256.Sum256([]byte(token))]
	if !ok {
		return caller{role: a.anonymous}, true
	}
	return caller{role: max(role, a.anonymous), known: true}, false
}

// required is the role a request needs: the operator endpoints are open
// (probes and Prometheus), reads need read, deletes admin, anything else
// submit.
func required(r *http.Request) Role {
	p := r.URL.Path
	switch {
	case p == "/healthz" || p == "/readyz" || p == "/metrics":
		return RoleNone
	case strings.HasPrefix(p, uiRoot):
		return uiRequired(r)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		return RoleRead
	case r.Method == http.MethodDelete:
		return RoleAdmin
	}
	return RoleSubmit
}

// guard serves next to callers whose role allows the request: 401
// unauthenticated without a valid credential, 403 permission_denied with a
// valid one of too weak a role. Non-canonical paths are refused first, so
// neither the mux's redirects nor a master ever sees one.
func (a *httpAuth) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := canonicalPath(r); err != nil {
			obs.WriteJSON(w, http.StatusBadRequest, api.Reply{Error: err})
			return
		}
		c, bad := a.identify(r)
		need := required(r)
		var deny *api.Error
		switch {
		case need == RoleNone:
		case bad:
			deny = api.Errorf(api.CodeUnauthenticated, "the token is not valid")
		case c.role >= need:
		case !c.known:
			deny = api.Errorf(api.CodeUnauthenticated, "%s %s needs a token of role %s (Authorization: Bearer <token>)", r.Method, r.URL.Path, need)
		default:
			deny = api.Errorf(api.CodePermissionDenied, "role %s may not %s %s (needs %s)", c.role, r.Method, r.URL.Path, need)
		}
		if deny != nil {
			if strings.HasPrefix(r.URL.Path, uiRoot) {
				uiDenied(w, r, deny)
				return
			}
			if deny.Code == api.CodeUnauthenticated {
				w.Header().Set("WWW-Authenticate", `Bearer realm="drover"`)
			}
			obs.WriteJSON(w, deny.Code.HTTPStatus(), api.Reply{Error: deny})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), callerKey{}, c)))
	})
}

// canonicalPath refuses a path that is not its own clean form or that
// hides separators or dots in escapes (%2F, %2E, %5C): such a path could
// name one route to the guard and another to a job's master.
func canonicalPath(r *http.Request) *api.Error {
	raw := r.URL.EscapedPath()
	if r.URL.RawPath != "" {
		raw = r.URL.RawPath
	}
	lower := strings.ToLower(raw)
	bad := strings.Contains(raw, "//") || strings.Contains(raw, `\`) ||
		strings.Contains(lower, "%2f") || strings.Contains(lower, "%2e") || strings.Contains(lower, "%5c") ||
		strings.Contains(lower, "%00")
	for _, seg := range strings.Split(r.URL.Path, "/") {
		if seg == "." || seg == ".." {
			bad = true
		}
	}
	if !bad {
		return nil
	}
	return api.Errorf(api.CodeInvalidArgument, "path is not canonical (no //, dot segments or escaped separators)")
}
