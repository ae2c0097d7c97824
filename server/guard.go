package server

import (
	"errors"
	"net/http"
	"strings"
)

// Browser safety. A web page can make a browser send a cross-origin POST without asking
// first only with a "simple" content type (text/plain, form encodings): requiring JSON (or
// a module type) on every POST forces a CORS preflight, which fails because no CORS headers
// are sent unless --cors-origin names an origin.

var errMediaType = errors.New("unsupported media type")

const codeMediaType = "unsupported_media_type"

// guarding refuses POST bodies of other types (415) and answers CORS for the one origin
// configured.
func (s *Server) guarding(h http.Handler) http.Handler {
	origin := s.cfg.CORSOrigin
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if origin != "" {
			if o := r.Header.Get("Origin"); o != "" && (origin == "*" || o == origin) {
				hd := w.Header()
				hd.Set("Access-Control-Allow-Origin", o)
				hd.Add("Vary", "Origin")
				if r.Method == http.MethodOptions {
					hd.Set("Access-Control-Allow-Methods", "GET, POST, DELETE")
					hd.Set("Access-Control-Allow-Headers", "Authorization, Content-Type")
					hd.Set("Access-Control-Max-Age", "600")
					w.WriteHeader(http.StatusNoContent)
					return
				}
			}
		}
		if r.Method == http.MethodPost && !allowedBody(r) {
			s.writeError(w, r, &requestError{kind: errMediaType, msg: "POST bodies must be sent with " +
				"Content-Type: application/json (or application/wasm / application/octet-stream " +
				"for a module to /register_function)"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func mediaType(ct string) string {
	mt, _, _ := strings.Cut(ct, ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// allowedBody accepts JSON, a module's types on /register_function, and — only from a
// client that is not a browser — curl's default for -d (form-urlencoded) or no type at all,
// so that the contract's documented curl lines keep working. Browsers send Origin on every
// POST (Fetch standard), so a page can never use that exception.
func allowedBody(r *http.Request) bool {
	switch mediaType(r.Header.Get("Content-Type")) {
	case "application/json":
		return true
	case "application/wasm", "application/octet-stream":
		return r.URL.Path == "/register_function"
	case "", "application/x-www-form-urlencoded":
		return r.Header.Get("Origin") == "" && r.Header.Get("Sec-Fetch-Site") == ""
	}
	return false
}
