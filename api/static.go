package api

import (
	"embed"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed openapi.yaml
var openapiYAML []byte

//go:embed widget
var widgetFS embed.FS

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(openapiYAML)
}

// pageCSP is the Content-Security-Policy of the pages agents open (the
// widget, and the agent page to come): they load nothing from anywhere
// else, and only the configured origins (the CRM's) may frame them.
func pageCSP(frameAncestors []string) string {
	return "default-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'; frame-ancestors " + strings.Join(frameAncestors, " ")
}

// widgetHandler serves the agent widget. The page gets its token in the
// URL (it runs in the CRM's iframe), hence no-referrer and no caching.
func widgetHandler(static fs.FS, csp string) http.Handler {
	files := http.StripPrefix("/widget/", http.FileServerFS(static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeProblem(w, r, http.StatusMethodNotAllowed, "method-not-allowed", "the widget is static")
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	})
}
