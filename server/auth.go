package server

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"faas/internal/ui"
	"faas/store"
)

// Authentication: with a key ring, every route but /healthz needs `Authorization: Bearer
// KEY`, and the key's namespace scopes the request. Without one, every request is in the
// default namespace (the CLI refuses to run that way off loopback unless told --insecure).

var errUnauthorized = errors.New("unauthorized")

const codeUnauthorized = "unauthorized"

type nsKey struct{}

// adminKey marks a request made with a key flagged admin=true.
type adminKey struct{}

// operator reports whether the request may read operator views: any request without a key
// ring (the server then trusts its loopback callers), else only an admin key's.
func (s *Server) operator(ctx context.Context) bool {
	if s.keys.Load() == nil {
		return true
	}
	admin, _ := ctx.Value(adminKey{}).(bool)
	return admin
}

// namespace returns the namespace of an authenticated request.
func namespace(ctx context.Context) string {
	if ns, ok := ctx.Value(nsKey{}).(string); ok {
		return ns
	}
	return store.DefaultNamespace
}

// SetKeys replaces the key ring (nil: no keys, everything in the default namespace). Safe
// while serving: a request uses the ring it started with.
func (s *Server) SetKeys(k *KeyRing) { s.keys.Store(k) }

// authenticating resolves the request's namespace from its key before h runs.
func (s *Server) authenticating(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ring := s.keys.Load()
		// The dashboard's static files hold no data: they load without a key, and the page
		// then asks for one for the JSON endpoints it calls.
		if ring == nil || r.URL.Path == "/healthz" || r.URL.Path == "/ui" || strings.HasPrefix(r.URL.Path, ui.Prefix) {
			h.ServeHTTP(w, r)
			return
		}
		var e keyEntry
		ok := false
		if key, found := bearer(r.Header.Get("Authorization")); found {
			e, ok = ring.entry(key)
		}
		if !ok {
			// Never echo the header: it may be a key of someone else's that was mistyped.
			w.Header().Set("WWW-Authenticate", `Bearer realm="faas"`)
			s.writeError(w, r, &requestError{kind: errUnauthorized,
				msg: "a valid API key is required: send it as 'Authorization: Bearer KEY' (faas --api-key or FAAS_API_KEY)"})
			return
		}
		ctx := context.WithValue(r.Context(), nsKey{}, e.ns)
		if e.admin {
			ctx = context.WithValue(ctx, adminKey{}, true)
		}
		h.ServeHTTP(w, r.WithContext(ctx))
	})
}

// bearer extracts the token of an "Authorization: Bearer TOKEN" header.
func bearer(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}
