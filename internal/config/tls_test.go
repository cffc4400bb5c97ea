package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
)

// pki writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, all made here with crypto/x509, and returns their paths.
func pki(t *testing.T) (ca, srvCert, srvKey, cliCert, cliKey string) {
	t.Helper()
	dir := t.TempDir()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "drover test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, _ := x509.MarshalECPrivateKey(k)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kb)
	}
	ca = write("ca.pem", "CERTIFICATE", caDER)
	srvCert, srvKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	cliCert, cliKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return
}

// TestConnectTLS: a server that requires TLS and verifies client
// certificates takes a service configured with DROVER_NATS_TLS_*, and
// refuses, with a clear error, one without them or without its client
// certificate.
func TestConnectTLS(t *testing.T) {
	ca, srvCert, srvKey, cliCert, cliKey := pki(t)
	tc, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: srvCert, KeyFile: srvKey, CaFile: ca, Verify: true})
	if err != nil {
		t.Fatal(err)
	}
	tc.MinVersion = tls.VersionTLS12
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
		TLSConfig: tc, TLSVerify: true, TLSTimeout: 2})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(s.Shutdown)
	url := "tls://" + s.Addr().String()

	good := Common{NATSURL: url, Prefix: "drover", TLSCA: ca, TLSCert: cliCert, TLSKey: cliKey}
	opts, err := good.NATSOptions()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		t.Fatalf("with DROVER_NATS_TLS_*: %v", err)
	}
	if _, err := nc.TLSConnectionState(); err != nil {
		t.Fatalf("not TLS: %v", err)
	}
	nc.Close()
	// The services' own path (config.Connect) too.
	nc, err = good.Connect("worker", zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if !waitConnected(nc) {
		t.Fatal("service connection over TLS not established")
	}
	nc.Close()

	for name, c := range map[string]Common{
		"no TLS settings":       {NATSURL: strings.Replace(url, "tls://", "nats://", 1)},
		"CA but no client cert": {NATSURL: url, TLSCA: ca},
		"client cert, no CA":    {NATSURL: url, TLSCert: cliCert, TLSKey: cliKey},
	} {
		// The services' path fails at once with the reason, instead of
		// retrying a connection that can never succeed.
		start := time.Now()
		nc, err := c.Connect("worker", zap.NewNop())
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
			continue
		}
		if !strings.Contains(err.Error(), "DROVER_NATS_TLS_") {
			t.Errorf("%s: the error does not point at the TLS settings: %v", name, err)
		}
		t.Logf("%s: %v (after %s)", name, err, time.Since(start))
	}
	// A client configured for TLS refuses a server without it.
	plain, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go plain.Start()
	if !plain.ReadyForConnections(10 * time.Second) {
		t.Fatal("plain server not ready")
	}
	t.Cleanup(plain.Shutdown)
	opts, _ = good.NATSOptions()
	if nc, err := nats.Connect(plain.ClientURL(), opts...); err == nil {
		nc.Close()
		t.Error("a client with DROVER_NATS_TLS_CA connected to a server without TLS")
	}
}

func waitConnected(nc *nats.Conn) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if nc.IsConnected() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// TestConnectWaitsForAServerNotUpYet: a service started before NATS (compose
// starts them together) keeps retrying and connects once the server is up;
// only settings the server refuses end the start.
func TestConnectWaitsForAServerNotUpYet(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	c := Common{NATSURL: "nats://127.0.0.1:" + strconv.Itoa(port)}
	nc, err := c.Connect("worker", zap.NewNop())
	if err != nil {
		t.Fatalf("no server yet must mean retrying, not failing: %v", err)
	}
	defer nc.Close()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	t.Cleanup(s.Shutdown)
	if !waitConnected(nc) {
		t.Fatal("did not connect once the server came up")
	}
}
