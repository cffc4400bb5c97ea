package wordcount

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
)

// TopResponse answers GET /api/v1/jobs/{id}/top?n=N.
//
// While the job runs, the master answers from its reducers' statuses: each
// reducer reports the top words of the map outputs it has merged so far,
// exact for those; partitions are disjoint, so merging the reducers' lists
// gives each word's count over the map tasks its reducer merged (Merged of
// Of). Final is false then, and n is capped at the live list size (100).
// Once the job finished, no master runs: the job manager answers from the
// job's detail (EndedRoutes), which holds the job's top N (config "top").
type TopResponse struct {
	Job    string      `json:"job"`
	Final  bool        `json:"final"`
	Phase  string      `json:"phase"`
	N      int         `json:"n"`
	Top    []WordCount `json:"top"`
	Words  int64       `json:"words,omitempty"`
	Merged int         `json:"merged,omitempty"`
	Of     int         `json:"of,omitempty"`
	Note   string      `json:"note,omitempty"`
}

func (m *master) OnOpenAPIInitialized(r framework.Router) {
	r.HandleFunc("GET /top", func(w http.ResponseWriter, req *http.Request) {
		n, ok := topParam(w, req)
		if !ok {
			return
		}
		resp := TopResponse{Job: m.H.JobID(), Phase: m.phase, N: n}
		m.mu.Lock()
		written := m.written
		m.mu.Unlock()
		if written != nil {
			fromDetail(&resp, *written, n)
			writeJSON(w, http.StatusOK, resp)
			return
		}
		if n > liveTop {
			resp.N, resp.Note = liveTop, "n capped at 100 while the job runs"
		}
		var lists [][]WordCount
		for _, wi := range m.H.Workers() {
			if wi.Type != ReduceWorker {
				continue
			}
			var st ReduceStatus
			if json.Unmarshal(wi.Status, &st) == nil {
				lists = append(lists, st.Top)
				resp.Merged += st.Merged
			}
		}
		if m.plan != nil {
			resp.Of = len(m.plan.Tasks()) * m.plan.Reducers
		}
		resp.Top = mergeTops(resp.N, lists...)
		if resp.Top == nil {
			resp.Top = []WordCount{}
		}
		writeJSON(w, http.StatusOK, resp)
	})
}

// endedRoutes serve GET /top of a job that has ended, from its detail; the
// job manager runs them, as there is no master any more.
func endedRoutes(job api.Job, r framework.Router) {
	r.HandleFunc("GET /top", func(w http.ResponseWriter, req *http.Request) {
		n, ok := topParam(w, req)
		if !ok {
			return
		}
		var d Detail
		if job.State != api.StateFinished || json.Unmarshal(job.Detail, &d) != nil || d.Phase != PhaseDone {
			writeError(w, api.Errorf(api.CodeFailedPrecondition, "job %s ended %s without a result", job.ID, job.State))
			return
		}
		resp := TopResponse{Job: job.ID, N: n}
		fromDetail(&resp, d, n)
		writeJSON(w, http.StatusOK, resp)
	})
}

func fromDetail(resp *TopResponse, d Detail, n int) {
	resp.Final, resp.Phase, resp.Words = true, d.Phase, d.Words
	if n > len(d.Top) && int64(len(d.Top)) < d.Distinct {
		resp.N = len(d.Top)
		resp.Note = "n capped at the job's top (config \"top\"); the full counts are in " + d.Output.Bucket + "/" + d.Output.Name
	}
	resp.Top = d.Top[:min(n, len(d.Top))]
	if resp.Top == nil {
		resp.Top = []WordCount{}
	}
}

func topParam(w http.ResponseWriter, req *http.Request) (int, bool) {
	n := 10
	if s := req.URL.Query().Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > MaxTop {
			writeError(w, api.Errorf(api.CodeInvalidArgument, "n must be 1..%d, got %q", MaxTop, s))
			return 0, false
		}
		n = v
	}
	return n, true
}

func writeError(w http.ResponseWriter, e *api.Error) {
	writeJSON(w, e.Code.HTTPStatus(), api.Reply{Error: e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
