package api

import (
	"net/http"
	"path"
	"strings"
)

// CleanPaths answers 404 (a problem document) to every request whose path
// is not in its one canonical form, and passes the rest to next. Without
// it, http.ServeMux answers "/v1//calls" or "/v1/./calls" with a redirect
// to the cleaned path, and clients follow redirects with their
// credentials; a path with an encoded slash ("%2F") would reach a handler
// as one segment that the client meant as two. Refusing is simpler to
// reason about than guessing what was meant: there is exactly one way to
// write each route.
//
// Wrap the process's outermost handler with it, so that no mux in the
// chain gets to redirect.
func CleanPaths(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !canonicalPath(r) {
			writeProblem(w, r, http.StatusNotFound, "not-found", uncleanPath)
			return
		}
		next.ServeHTTP(w, r)
	})
}

const uncleanPath = "no such path: write it without empty, '.' or '..' segments and without encoded slashes"

// canonicalPath reports whether r's path is clean: absolute, no empty,
// "." or ".." segment (a trailing slash is allowed: routes say whether they
// have one), no encoded slash or backslash, no control character.
func canonicalPath(r *http.Request) bool {
	p := r.URL.Path
	if p == "" || p[0] != '/' {
		return false
	}
	if c := path.Clean(p); p != c && p != c+"/" {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < 0x20 || p[i] == 0x7f {
			return false
		}
	}
	if raw := r.URL.RawPath; raw != "" {
		l := strings.ToLower(raw)
		if strings.Contains(l, "%2f") || strings.Contains(l, "%5c") {
			return false
		}
	}
	return true
}
