package jobmanager_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drover-run/drover/internal/natstest"
	"github.com/drover-run/drover/internal/testsys"
	"github.com/drover-run/drover/jobs/builtin"
	"github.com/drover-run/drover/pkg/api"
	"github.com/drover-run/drover/pkg/framework"
	"github.com/drover-run/drover/services/jobmanager"
)

// Tokens of the authentication tests, one per role.
const (
	readToken   = "read-token-0123456789"
	submitToken = "submit-token-0123456789"
	adminToken  = "admin-token-0123456789"
)

// doAs sends a request with the given Authorization header ("" for none).
func doAs(t *testing.T, authz, method, url, body string) httpAnswer {
	t.Helper()
	return doHeader(t, method, url, body, http.Header{"Authorization": {authz}})
}

func doHeader(t *testing.T, method, url, body string, h http.Header) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		if len(v) > 0 && v[0] != "" {
			req.Header[k] = v
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := httpAnswer{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &a.reply)
	return a
}

// hostileType is a job type whose master echoes the request it got and
// answers with whatever status and headers the test asks for, as a
// malicious or broken job type could.
func hostileType() framework.JobType {
	return framework.JobType{
		Name: "hostile",
		NewMaster: func(h framework.MasterHandle) (framework.JobMaster, error) {
			return &hostileMaster{BaseJobMaster: framework.BaseJobMaster{H: h}}, nil
		},
	}
}

type hostileMaster struct{ framework.BaseJobMaster }

func (m *hostileMaster) Init(ctx context.Context) error { return nil }

func (m *hostileMaster) OnOpenAPIInitialized(r framework.Router) {
	r.HandleFunc("/echo", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"header": req.Header, "path": req.URL.Path})
	})
	r.HandleFunc("GET /answer", func(w http.ResponseWriter, req *http.Request) {
		for _, h := range []string{"Set-Cookie", "Location", "Access-Control-Allow-Origin", "X-Evil", "Connection",
			"Content-Security-Policy", "Content-Type", "Cache-Control", "Strict-Transport-Security"} {
			w.Header().Set(h, "from-master")
		}
		w.Header().Set("Content-Type", "text/html")
		var code int
		_, _ = fmt.Sscan(req.URL.Query().Get("status"), &code)
		if code != 0 {
			w.WriteHeader(code)
		}
		_, _ = io.WriteString(w, "<script>alert(1)</script>")
	})
}

func authSystem(t *testing.T) (*testsys.System, string) {
	t.Helper()
	types := builtin.TestRegistry()
	types.MustRegister(hostileType())
	sys := testsys.Start(t, types)
	sys.HTTPAnonymous = ""
	sys.HTTPTokens = "read:" + readToken + ",submit:" + submitToken + ",admin:" + adminToken
	addr := testsys.FreeAddr(t)
	sys.AddJobManagerHTTP("jm", addr)
	sys.AddJobMaster("m0")
	sys.AddWorker("w0")
	sys.WaitReady(1, 1)
	return sys, "http://" + addr
}

// TestHTTPRolesOnEveryRoute sends each route as anonymous, with a bad
// token, and with each role: 401 without a valid credential, 403 with a
// role too weak, served otherwise; refused calls change nothing.
func TestHTTPRolesOnEveryRoute(t *testing.T) {
	sys, base := authSystem(t)
	if a := doAs(t, "Bearer "+submitToken, "POST", base+"/api/v1/jobs", `{"id":"h1","type":"hostile"}`); a.status != 200 {
		t.Fatalf("submit hostile: %d %s", a.status, a.body)
	}
	natstest.Eventually(t, 10*time.Second, "h1 serves /echo", func() bool {
		return doAs(t, "Bearer "+readToken, "GET", base+"/api/v1/jobs/h1/echo", "").status == 200
	})

	type route struct {
		method, path, body string
		need               string // read, submit, admin, open
	}
	routes := []route{
		{"GET", "/api/v1/jobs", "", "read"},
		{"GET", "/api/v1/jobs/h1", "", "read"},
		{"GET", "/api/v1/jobs/h1/workers", "", "read"},
		{"GET", "/api/v1/nodes", "", "read"},
		{"GET", "/api/v1/jobs/h1/echo", "", "read"},
		{"POST", "/api/v1/jobs/h1/echo", "{}", "submit"},
		{"POST", "/api/v1/jobs", `{"type":"counter","config":{"workers":1,"target":1}}`, "submit"},
		{"POST", "/api/v1/jobs/missing/cancel", "", "submit"},
		{"DELETE", "/api/v1/jobs/missing", "", "admin"},
		{"GET", "/metrics", "", "open"},
		{"GET", "/healthz", "", "open"},
		{"GET", "/readyz", "", "open"},
	}
	callers := []struct {
		name, authz string
		role        string
	}{
		{"anonymous", "", ""},
		{"unknown token", "Bearer not-a-token-of-this-system", "bad"},
		{"malformed header", "Basic " + readToken, "bad"},
		{"empty bearer", "Bearer ", "bad"},
		{"read", "Bearer " + readToken, "read"},
		{"submit", "Bearer " + submitToken, "submit"},
		{"admin", "bearer " + adminToken, "admin"},
	}
	rank := map[string]int{"": 0, "bad": 0, "read": 1, "submit": 2, "admin": 3}
	for _, c := range callers {
		for _, rt := range routes {
			t.Run(c.name+" "+rt.method+" "+rt.path, func(t *testing.T) {
				a := doAs(t, c.authz, rt.method, base+rt.path, rt.body)
				var want int
				switch {
				case rt.need == "open":
					want = 200
				case c.role == "bad":
					want = 401
				case rank[c.role] >= rank[rt.need]:
					want = 0 // served: anything but 401/403
				case c.role == "":
					want = 401
				default:
					want = 403
				}
				switch want {
				case 0:
					if a.status == 401 || a.status == 403 {
						t.Fatalf("refused: %d %s", a.status, a.body)
					}
				case 401:
					if a.status != 401 || a.code() != api.CodeUnauthenticated || a.header.Get("WWW-Authenticate") == "" {
						t.Fatalf("got %d %q (WWW-Authenticate %q), want 401 unauthenticated", a.status, a.code(), a.header.Get("WWW-Authenticate"))
					}
				case 403:
					if a.status != 403 || a.code() != api.CodePermissionDenied {
						t.Fatalf("got %d %q, want 403 permission_denied", a.status, a.code())
					}
				default:
					if a.status != want {
						t.Fatalf("got %d, want %d", a.status, want)
					}
				}
				if strings.Contains(string(a.body), readToken) || strings.Contains(string(a.body), adminToken) {
					t.Fatal("a token is echoed in the answer")
				}
			})
		}
	}
	// Refused submissions stored nothing: only h1 and the admin's and
	// submitter's counter jobs exist.
	jobs, _, err := sys.Client.List(context.Background(), api.ListRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// By id: a list page taken while jobs change may show one twice.
	ids := map[string]string{}
	for _, j := range jobs {
		ids[j.ID] = j.Type
	}
	if len(ids) != 3 {
		t.Fatalf("jobs after the role table: %v, want h1 and one counter per role allowed to submit", ids)
	}
}

// TestHTTPWithoutTokensIsReadOnly: with no token configured the API reads
// for anyone and refuses every change until tokens are configured (or the
// operator opens it with DROVER_HTTP_ANONYMOUS).
func TestHTTPWithoutTokensIsReadOnly(t *testing.T) {
	sys := testsys.Start(t, builtin.TestRegistry())
	sys.HTTPAnonymous = ""
	addr := testsys.FreeAddr(t)
	sys.AddJobManagerHTTP("jm", addr)
	base := "http://" + addr
	natstest.Eventually(t, 10*time.Second, "the API answers", func() bool {
		resp, err := http.Get(base + "/api/v1/jobs")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	if a := do(t, "POST", base+"/api/v1/jobs", `{"type":"counter"}`); a.status != 401 || a.code() != api.CodeUnauthenticated ||
		!strings.Contains(a.reply.Error.Message, "token") {
		t.Fatalf("anonymous submit without tokens configured: %d %s", a.status, a.body)
	}
	if a := doAs(t, "Bearer "+adminToken, "POST", base+"/api/v1/jobs", `{"type":"counter"}`); a.status != 401 {
		t.Fatalf("a token the replica does not know: %d %s", a.status, a.body)
	}
	if jobs, _, _ := sys.Client.List(context.Background(), api.ListRequest{}); len(jobs) != 0 {
		t.Fatalf("refused submissions stored %d jobs", len(jobs))
	}
}

// TestForwarderIsHardened: the master gets no credentials nor hop-by-hop
// headers, the client gets only allowed headers and a valid status, and
// non-canonical paths never reach a master.
func TestForwarderIsHardened(t *testing.T) {
	_, base := authSystem(t)
	admin := "Bearer " + adminToken
	if a := doAs(t, admin, "POST", base+"/api/v1/jobs", `{"id":"h2","type":"hostile"}`); a.status != 200 {
		t.Fatalf("submit: %d %s", a.status, a.body)
	}
	natstest.Eventually(t, 10*time.Second, "h2 serves /echo", func() bool {
		return doAs(t, admin, "GET", base+"/api/v1/jobs/h2/echo", "").status == 200
	})

	t.Run("request headers", func(t *testing.T) {
		a := doHeader(t, "GET", base+"/api/v1/jobs/h2/echo", "", http.Header{
			"Authorization":       {admin},
			"Cookie":              {"drover_token=" + adminToken + "; other=1"},
			"Proxy-Authorization": {"Basic c2VjcmV0"},
			"Proxy-Foo":           {"x"},
			"Connection":          {"X-Secret-Hop"},
			"X-Secret-Hop":        {"named by Connection"},
			"Keep-Alive":          {"timeout=5"},
			"Te":                  {"trailers"},
			"Upgrade":             {"websocket"},
			"X-Request-Id":        {"kept"},
		})
		var echo struct {
			Header http.Header `json:"header"`
		}
		if a.status != 200 || json.Unmarshal(a.body, &echo) != nil {
			t.Fatalf("echo: %d %s", a.status, a.body)
		}
		for _, h := range []string{"Authorization", "Cookie", "Proxy-Authorization", "Proxy-Foo", "Connection", "X-Secret-Hop",
			"Keep-Alive", "Te", "Upgrade"} {
			if v := echo.Header.Get(h); v != "" {
				t.Errorf("the master got %s: %q", h, v)
			}
		}
		if echo.Header.Get("X-Request-Id") != "kept" {
			t.Errorf("an ordinary header was dropped: %v", echo.Header)
		}
		if strings.Contains(string(a.body), adminToken) {
			t.Error("the token reached the master")
		}
	})

	t.Run("answer headers", func(t *testing.T) {
		a := doAs(t, admin, "GET", base+"/api/v1/jobs/h2/answer?status=201", "")
		if a.status != 201 {
			t.Fatalf("status %d, want the master's 201", a.status)
		}
		for _, h := range []string{"Set-Cookie", "Location", "Access-Control-Allow-Origin", "X-Evil", "Strict-Transport-Security"} {
			if v := a.header.Get(h); v != "" {
				t.Errorf("the client got the master's %s: %q", h, v)
			}
		}
		if a.header.Get("Cache-Control") != "from-master" || a.header.Get("Content-Type") != "text/html" {
			t.Errorf("allowed headers lost: %v", a.header)
		}
		if csp := a.header.Get("Content-Security-Policy"); !strings.Contains(csp, "sandbox") || a.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("a master's answer may run script on the console's origin: CSP %q", csp)
		}
	})

	for _, status := range []string{"99", "101", "600", "1000", "-1"} {
		t.Run("status "+status, func(t *testing.T) {
			a := doAs(t, admin, "GET", base+"/api/v1/jobs/h2/answer?status="+status, "")
			if a.status != 500 || a.code() != api.CodeInternal || strings.Contains(string(a.body), "script") {
				t.Fatalf("status %s from the master answered %d %s, want 500 internal", status, a.status, a.body)
			}
		})
	}

	for _, p := range []string{
		"/api/v1/jobs/h2/%2F%2Fecho", "/api/v1/jobs/h2/%2fecho", "/api/v1/jobs/h2/%2e%2e/h1/echo",
		"/api/v1/jobs/h2/%2E%2E/x", "/api/v1/jobs/h2//echo", "/api/v1/jobs/h2/../h1/echo", "/api/v1/jobs/h2/./echo",
		"/api/v1/jobs/h2/echo/..", "/api/v1/jobs/h2/%5cecho", "/api/v1/jobs/h2/a%00b", "/api//v1/jobs",
	} {
		t.Run("path "+p, func(t *testing.T) {
			a := rawRequest(t, base, "GET "+p+" HTTP/1.1\r\nAuthorization: "+admin+"\r\n")
			if a.status != 400 || a.code() != api.CodeInvalidArgument {
				t.Fatalf("%s: %d %s, want 400 invalid_argument", p, a.status, a.body)
			}
		})
	}
}

// rawRequest sends a request line as written, bypassing the client's path
// cleaning, and reads the answer.
func rawRequest(t *testing.T, base, head string) httpAnswer {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, head+"Host: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := httpAnswer{status: resp.StatusCode, header: resp.Header, body: b}
	_ = json.Unmarshal(b, &a.reply)
	return a
}

// TestHTTPTokensFileAndTLS: tokens from a file, the listener on TLS only.
func TestHTTPTokensFileAndTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeSelfSigned(t, certFile, keyFile)
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte("# role token\nread "+readToken+"\n\nsubmit "+submitToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sys := testsys.Start(t, builtin.TestRegistry())
	addr := testsys.FreeAddr(t)
	sys.AddJobManagerWith("jm", func(c *jobmanager.Config) {
		c.HTTPAddr, c.HTTPAnonymous, c.HTTPTokensFile = addr, "", tokens
		c.HTTPTLSCert, c.HTTPTLSKey = certFile, keyFile
	})
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(url, token string) int {
		req, _ := http.NewRequest("GET", url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			return -1
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	natstest.Eventually(t, 10*time.Second, "HTTPS answers", func() bool { return get("https://"+addr+"/healthz", "") == 200 })
	if s := get("https://"+addr+"/api/v1/jobs", readToken); s != 200 {
		t.Fatalf("read token from the file over HTTPS: %d", s)
	}
	if s := get("https://"+addr+"/api/v1/jobs", ""); s != 401 {
		t.Fatalf("anonymous with tokens configured: %d, want 401", s)
	}
	if s := get("http://"+addr+"/healthz", ""); s == 200 {
		t.Fatal("the TLS listener answered plain HTTP")
	}
}

// writeSelfSigned writes a certificate for 127.0.0.1 and its key.
func writeSelfSigned(t *testing.T, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "drover test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}
