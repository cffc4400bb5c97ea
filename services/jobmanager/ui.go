package jobmanager

import (
	"net/http"
	"net/url"

	"github.com/drover-run/drover/internal/obs"
	"github.com/drover-run/drover/pkg/api"
)

// uiRoot is where the web console is served.
const uiRoot = "/ui/"

// uiRequired is the role a console request needs: the login page and the
// static assets are open, pages read, posted forms submit.
func uiRequired(r *http.Request) Role {
	switch p := r.URL.Path; {
	case p == uiRoot+"login" || p == uiRoot+"logout" || len(p) > len(uiRoot+"static/") && p[:len(uiRoot+"static/")] == uiRoot+"static/":
		return RoleNone
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		return RoleRead
	}
	return RoleSubmit
}

// uiDenied sends a browser that lacks rights for a page to the login page;
// other console requests get the coded error.
func uiDenied(w http.ResponseWriter, r *http.Request, e *api.Error) {
	if r.Method == http.MethodGet && r.Header.Get("Accept") != "text/event-stream" {
		q := url.Values{"next": {r.URL.RequestURI()}, "why": {string(e.Code)}}
		http.Redirect(w, r, uiRoot+"login?"+q.Encode(), http.StatusSeeOther)
		return
	}
	obs.WriteJSON(w, e.Code.HTTPStatus(), api.Reply{Error: e})
}
