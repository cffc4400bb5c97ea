package jobmanager

import (
	"net/http"

	"github.com/drover-run/drover/pkg/api"
)

// serveEnded answers a job route of an ended job, which has no master to
// forward to, from its type's EndedRoutes (the job's final record is all
// they get). It reports false when the type has none or no route matches,
// and the caller answers failed_precondition as for any job without a master.
func (s *Service) serveEnded(w http.ResponseWriter, r *http.Request, j *api.Job) bool {
	jt, ok := s.deps.Types.Type(j.Type)
	if !ok || jt.EndedRoutes == nil {
		return false
	}
	mux := http.NewServeMux()
	jt.EndedRoutes(*j, mux)
	req := r.Clone(r.Context())
	req.URL.Path, req.URL.RawPath = "/"+r.PathValue("rest"), ""
	h, pattern := mux.Handler(req)
	if pattern == "" {
		return false
	}
	h.ServeHTTP(w, req)
	return true
}
