package api

import (
	"embed"
	"io/fs"
	"net/http"
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

// widgetHandler serves the agent widget. The page gets its token in the
// URL (it runs in the CRM's iframe), hence no-referrer and no caching; it
// loads nothing from anywhere else (CSP default-src 'self').
func widgetHandler(static fs.FS) http.Handler {
	files := http.StripPrefix("/widget/", http.FileServerFS(static))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeProblem(w, r, http.StatusMethodNotAllowed, "method-not-allowed", "the widget is static")
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "default-src 'self'; base-uri 'none'; form-action 'none'; object-src 'none'")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		files.ServeHTTP(w, r)
	})
}
