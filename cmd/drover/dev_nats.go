package main

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// startNATS runs the embedded JetStream server of `drover dev`.
func startNATS(host string, port int, dataDir string, log server.Logger) (*server.Server, error) {
	// Say clearly why the port is unusable; the server's own failure to
	// listen surfaces only as "not ready".
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	if port > 0 {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("cannot listen on %s for the embedded NATS server: %w (another NATS running? use it with DROVER_NATS_URL=nats://%s, or pick --port)", addr, err, addr)
		}
		_ = ln.Close()
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, fmt.Errorf("nats data directory: %w", err)
	}
	opts := &server.Options{
		ServerName: "drover-dev",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dataDir,
		NoSigs:     true, // the launcher owns the signals
		MaxPayload: 8 << 20,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded nats server: %w", err)
	}
	s.SetLogger(log, false, false)
	go s.Start()
	if !s.ReadyForConnections(15 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("embedded nats server on %s not ready after 15s", addr)
	}
	return s, nil
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
	l.mux.line("nats", "WARN "+fmt.Sprintf(format, v...))
}
func (l natsLog) Errorf(format string, v ...any) {
	l.mux.alert("nats", "ERROR "+fmt.Sprintf(format, v...))
}
func (l natsLog) Fatalf(format string, v ...any) {
	l.mux.alert("nats", "FATAL "+fmt.Sprintf(format, v...))
}
func (l natsLog) Debugf(string, ...any) {}
func (l natsLog) Tracef(string, ...any) {}
