package jobmanager

import (
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/drover-run/drover/internal/obs"
	"github.com/drover-run/drover/pkg/api"
)

// openAPI is the part of docs/openapi.yaml the test reads.
type openAPI struct {
	OpenAPI string                    `yaml:"openapi"`
	Paths   map[string]map[string]any `yaml:"paths"`
}

var httpMethods = []string{"get", "post", "put", "patch", "delete"}

func loadOpenAPI(t *testing.T) openAPI {
	t.Helper()
	b, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPI
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi: %q, want 3.x", doc.OpenAPI)
	}
	return doc
}

// documented lists "METHOD /path" for every operation in the document.
func (d openAPI) documented() []string {
	var out []string
	for path, item := range d.Paths {
		for _, m := range httpMethods {
			if _, ok := item[m]; ok {
				out = append(out, strings.ToUpper(m)+" "+path)
			}
		}
	}
	sort.Strings(out)
	return out
}

// forwardedPath is how the document writes the route "/api/v1/jobs/{id}/{rest...}".
const forwardedPath = "/api/v1/jobs/{id}/{route}"

// TestOpenAPIDescribesEveryRoute keeps docs/openapi.yaml and the routes of
// http.go the same: every route registered is documented with its method,
// and every documented operation reaches its own handler on the job
// manager's real mux, not the catch-all 404 or a 405.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	ops := doc.documented()

	reg := obs.NewRegistry()
	s := &Service{deps: Deps{Registry: reg}, auth: &httpAuth{anonymous: RoleAdmin}, metrics: newMetrics(reg)}
	registered := []string{"GET /metrics", "GET /healthz", "GET /readyz"}
	for _, rt := range s.apiRoutes() {
		if method, path, ok := strings.Cut(rt.pattern, " "); ok {
			registered = append(registered, method+" "+path)
			continue
		}
		// A method-less route takes every method: the forwarded one.
		if rt.pattern != "/api/v1/jobs/{id}/{rest...}" {
			t.Fatalf("unexpected method-less route %q", rt.pattern)
		}
		for _, m := range httpMethods {
			registered = append(registered, strings.ToUpper(m)+" "+forwardedPath)
		}
	}
	for _, r := range registered {
		if !slices.Contains(ops, r) {
			t.Errorf("route %s is served but not in docs/openapi.yaml", r)
		}
	}

	mux := s.newHTTP().Mux
	for _, op := range ops {
		method, path, _ := strings.Cut(op, " ")
		concrete := strings.NewReplacer("{id}", "j1", "{route}", "some/route").Replace(path)
		_, pattern := mux.Handler(httptest.NewRequest(method, concrete, nil))
		switch {
		case pattern == "" || pattern == apiRoot:
			t.Errorf("documented %s is not routed (pattern %q)", op, pattern)
		case !strings.Contains(pattern, " ") && pattern != "/api/v1/jobs/{id}/{rest...}":
			t.Errorf("documented %s answers 405 (pattern %q)", op, pattern)
		}
		if path != forwardedPath && path != "/api/v1/jobs/{id}/status" && !slices.Contains(registered, op) {
			t.Errorf("documented %s is not a route of http.go", op)
		}
	}
}

// TestOpenAPIErrorStatusesFollowTheCodes checks that every error answer the
// document lists is a status some code maps to (or 405/504, which it explains).
func TestOpenAPIErrorStatusesFollowTheCodes(t *testing.T) {
	doc := loadOpenAPI(t)
	mapped := map[string]bool{"405": true, "504": true}
	for _, c := range []api.Code{api.CodeInvalidArgument, api.CodeNotFound, api.CodeAlreadyExists, api.CodeUnknownType,
		api.CodeFailedPrecondition, api.CodeTooLarge, api.CodeUnavailable, api.CodeInternal,
		api.CodeUnauthenticated, api.CodePermissionDenied} {
		mapped[strconv.Itoa(c.HTTPStatus())] = true
	}
	for path, item := range doc.Paths {
		for _, m := range httpMethods {
			op, ok := item[m].(map[string]any)
			if !ok {
				continue
			}
			responses, _ := op["responses"].(map[string]any)
			if len(responses) == 0 {
				t.Errorf("%s %s documents no response", m, path)
			}
			for status, r := range responses {
				ref, _ := r.(map[string]any)["$ref"].(string)
				if ref == "#/components/responses/Error" && !mapped[status] {
					t.Errorf("%s %s: error status %s is no code's", m, path, status)
				}
			}
		}
	}
}
