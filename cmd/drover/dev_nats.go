package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/drover-run/drover/internal/auth"
	"github.com/drover-run/drover/pkg/topics"
)

// startNATS runs the embedded JetStream server of `drover dev` with the
// deployment's authorization (internal/auth, the same as compose): every
// service connects with its role's nkey, the job manager also with its
// system-account one (fast failover on $SYS disconnect events,
// docs/failover.md), and connections without credentials get the client
// role only. The keys live in dataDir/auth and are kept across runs.
//
// monitorPort is the server's HTTP monitoring port (/varz, /jsz, /connz)
// on host: -1 picks a free one, 0 turns it off.
func startNATS(host string, port, monitorPort int, dataDir string, space topics.Space, buckets []string, log server.Logger) (*server.Server, *auth.Deployment, error) {
	// Say clearly why the port is unusable; the server's own failure to
	// listen surfaces only as "not ready".
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if port > 0 {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot listen on %s for the embedded NATS server: %w (another NATS running? use it with DROVER_NATS_URL=nats://%s, or pick --port)", addr, err, addr)
		}
		_ = ln.Close()
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("nats data directory: %w", err)
	}
	d, err := auth.Init(filepath.Join(dataDir, "auth"), auth.Options{Space: space, Anonymous: true,
		Perm: topics.PermOptions{DataBuckets: buckets, WorkBucket: auth.DefaultWorkBucket}})
	if err != nil {
		return nil, nil, err
	}
	opts, err := d.ServerOptions(host, port, dataDir)
	if err != nil {
		return nil, nil, err
	}
	opts.ServerName = "drover-dev"
	if monitorPort != 0 {
		opts.HTTPHost, opts.HTTPPort = host, monitorPort
	}
	opts.MaxPayload = 8 << 20
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("embedded nats server: %w", err)
	}
	s.SetLogger(log, false, false)
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, nil, fmt.Errorf("embedded nats server on %s not ready after 15s", addr)
	}
	return s, d, nil
}

// natsLog routes the embedded server's log into the launcher's output:
// warnings and errors always, notices only when asked (they are many).
type natsLog struct {
	mux     *logMux
	notices bool
}

func (l natsLog) Noticef(format string, v ...any) {
	if l.notices {
		l.mux.line("nats", fmt.Sprintf(format, v...))
	}
}
func (l natsLog) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "Plaintext passwords detected") {
		// The anonymous client user has no password at all; the
		// identities are nkeys. Nothing to warn about.
		return
	}
	l.mux.line("nats", "WARN "+msg)
}
func (l natsLog) Errorf(format string, v ...any) {
	l.mux.alert("nats", "ERROR "+fmt.Sprintf(format, v...))
}
func (l natsLog) Fatalf(format string, v ...any) {
	l.mux.alert("nats", "FATAL "+fmt.Sprintf(format, v...))
}
func (l natsLog) Debugf(string, ...any) {}
func (l natsLog) Tracef(string, ...any) {}
