// Package obs builds what every Drover process exposes to operators: its
// zap logger, its Prometheus registry, and the HTTP listener serving
// /metrics, /healthz and /readyz (plus any routes a service adds).
package obs

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/drover-run/drover/internal/buildinfo"
)

// NewLogger builds the logger of a service, writing to stderr: "json"
// (one object a line, for containers and log pipelines) or "console"
// (aligned and readable, for people: drover dev sets it), at level
// (debug, info, warn, error).
func NewLogger(format, level string) (*zap.Logger, error) {
	return newLogger(format, level, zapcore.Lock(os.Stderr))
}

func newLogger(format, level string, out zapcore.WriteSyncer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, fmt.Errorf("obs: log level %q: %w", level, err)
	}
	opts := []zap.Option{zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(os.Stderr))}
	var enc zapcore.Encoder
	switch format {
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	case "json", "":
		ec := zap.NewProductionEncoderConfig()
		ec.TimeKey = "time"
		ec.EncodeTime = zapcore.RFC3339NanoTimeEncoder
		enc = zapcore.NewJSONEncoder(ec)
		opts = append(opts, zap.AddStacktrace(zapcore.ErrorLevel))
	default:
		return nil, fmt.Errorf("obs: log format %q: want json or console", format)
	}
	return zap.New(zapcore.NewCore(enc, out, lvl), opts...), nil
}

// NewRegistry returns a registry with the Go and process collectors and
// drover_build_info, so every service says which build it runs.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	bi := buildinfo.Get()
	build := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "drover", Name: "build_info",
		Help: "Always 1; the labels describe the running build."}, []string{"version", "revision", "goversion"})
	build.WithLabelValues(bi.Version, bi.Revision, bi.GoVersion).Set(1)
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), build)
	return reg
}

// Check is one readiness condition.
type Check func(ctx context.Context) error

// Server is the operator HTTP listener.
type Server struct {
	Mux *http.ServeMux
	// Handler, when set, serves instead of Mux (Mux behind a middleware).
	Handler http.Handler
	// CertFile and KeyFile, when both set, make Start serve HTTPS only.
	CertFile, KeyFile string

	reg    *prometheus.Registry
	checks map[string]Check
	info   func() map[string]any
}

// NewServer serves /metrics from reg, /healthz, and /readyz from checks.
// info, if not nil, adds fields to the /readyz answer (e.g. "leader").
func NewServer(reg *prometheus.Registry, checks map[string]Check, info func() map[string]any) *Server {
	s := &Server{Mux: http.NewServeMux(), reg: reg, checks: checks, info: info}
	s.Mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	s.Mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, map[string]any{"status": "ok"})
	})
	s.Mux.HandleFunc("GET /readyz", s.readyz)
	return s
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	out := map[string]any{}
	failed := map[string]string{}
	for name, c := range s.checks {
		if err := c(ctx); err != nil {
			failed[name] = err.Error()
		}
	}
	if s.info != nil {
		for k, v := range s.info() {
			out[k] = v
		}
	}
	status := http.StatusOK
	out["status"] = "ready"
	if len(failed) > 0 {
		status = http.StatusServiceUnavailable
		out["status"] = "not ready"
		out["failed"] = failed
	}
	WriteJSON(w, status, out)
}

// WriteJSON writes v as a JSON response.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Start listens on addr and serves in the background until stop is
// called. A listen failure is returned at once, so a service refuses to
// start on a busy port instead of running without health checks. An empty
// addr serves nothing. It returns the bound address.
func (s *Server) Start(addr string, log *zap.Logger) (bound string, stop func(), err error) {
	if addr == "" {
		return "", func() {}, nil
	}
	h := s.Handler
	if h == nil {
		h = s.Mux
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, ErrorLog: zap.NewStdLog(log.Named("http"))}
	tlsOn := s.CertFile != "" || s.KeyFile != ""
	if tlsOn {
		// Load now, so a bad certificate stops the start-up, not the first request.
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return "", nil, fmt.Errorf("obs: TLS certificate: %w", err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("obs: listen %s: %w", addr, err)
	}
	log.Info("http listening", zap.String("addr", ln.Addr().String()), zap.Bool("tls", tlsOn))
	done := make(chan struct{})
	go func() {
		defer close(done)
		serve := func() error { return srv.Serve(ln) }
		if tlsOn {
			serve = func() error { return srv.ServeTLS(ln, "", "") }
		}
		if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", zap.Error(err))
		}
	}()
	return ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}
