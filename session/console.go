package session

import (
	"embed"
	"net/http"
)

// consoleFiles is the console: one HTML page and its script, no external resources.
//
//go:embed console/index.html console/console.js
var consoleFiles embed.FS

// consoleCSP allows only the console's own script and same-origin API calls.
const consoleCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// mountConsole serves the console page and its script at /console/console.js. With
// a database the page is GET / and /console redirects there; without one, / is left
// to the caller (the public stream list) and the page stays at /console, where its
// login answers 503. The page works logged out too (it shows the login form); the
// data comes from the JSON API.
func (s *Store) mountConsole(mux *http.ServeMux) {
	serve := func(name, ctype string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			b, err := consoleFiles.ReadFile(name)
			if err != nil { // cannot happen: embedded
				http.Error(w, "console missing", http.StatusInternalServerError)
				return
			}
			h := w.Header()
			h.Set("Content-Type", ctype)
			h.Set("Cache-Control", "no-cache")
			h.Set("Content-Security-Policy", consoleCSP)
			h.Set("X-Content-Type-Options", "nosniff")
			h.Set("Referrer-Policy", "same-origin")
			w.Write(b)
		}
	}
	page := serve("console/index.html", "text/html; charset=utf-8")
	if s.Enabled() {
		mux.HandleFunc("GET /{$}", page)
		mux.HandleFunc("GET /console", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/", http.StatusFound)
		})
	} else {
		mux.HandleFunc("GET /console", page)
	}
	mux.HandleFunc("GET /console/console.js", serve("console/console.js", "text/javascript; charset=utf-8"))
}
