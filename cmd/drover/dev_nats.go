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
	"golang.org/x/crypto/bcrypt"
)

// devAccount is the embedded server's application account: clients that
// bring no credentials (the services, drover, `nats req`) land in it.
const devAccount, devUser, devSysUser = "DROVER", "drover", "sys"

// startNATS runs the embedded JetStream server of `drover dev`. It has a
// system account, whose password (sysPass) only the job manager gets: the
// leader follows $SYS disconnect events and moves a crashed job-master
// node's masters within milliseconds (docs/failover.md).
//
// monitorPort is the server's HTTP monitoring port (/varz, /jsz, /connz)
// on host: -1 picks a free one, 0 turns it off.
func startNATS(host string, port, monitorPort int, dataDir, sysPass string, log server.Logger) (*server.Server, error) {
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
	// The server keeps only a bcrypt hash of the system password.
	hash, err := bcrypt.GenerateFromPassword([]byte(sysPass), bcrypt.MinCost)
	if err != nil {
		return nil, fmt.Errorf("nats config: %w", err)
	}
	conf := filepath.Join(dataDir, "nats-dev.conf")
	body := fmt.Sprintf(`accounts {
  %s { jetstream: enabled, users: [ { user: %q } ] }
  SYS { users: [ { user: %q, password: %q } ] }
}
system_account: SYS
no_auth_user: %q
`, devAccount, devUser, devSysUser, hash, devUser)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return nil, fmt.Errorf("nats config: %w", err)
	}
	opts, err := server.ProcessConfigFile(conf)
	if err != nil {
		return nil, fmt.Errorf("nats config: %w", err)
	}
	opts.ServerName, opts.Host, opts.Port = "drover-dev", host, port
	opts.JetStream, opts.StoreDir = true, dataDir
	opts.NoSigs = true // the launcher owns the signals
	if monitorPort != 0 {
		opts.HTTPHost, opts.HTTPPort = host, monitorPort
	}
	opts.MaxPayload = 8 << 20
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
	msg := fmt.Sprintf(format, v...)
	if strings.HasPrefix(msg, "Plaintext passwords detected") {
		// The no-auth application user has no password at all; the
		// system password is a bcrypt hash. Nothing to warn about.
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
