package submit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"

	"github.com/postfach/postfach/agent/localauth"
	"github.com/postfach/postfach/index"
)

const (
	testUser = "me"
	testPass = "local secret"
)

// env is a submission endpoint on 127.0.0.1 over a fresh store.
type env struct {
	store  *index.Store
	srv    *Server
	addr   string
	cert   *localauth.Certificate
	client *tls.Config // trusts cert

	mu      sync.Mutex
	nudged  []string
	authLog []string
}

// listener wraps a listener so that its connections claim another
// remote address (a client elsewhere on the network).
type remoteListener struct {
	net.Listener
	remote net.Addr
}

type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{c, l.remote}, nil
}

// start runs a submission endpoint for accounts; with remote set, every
// client looks as if it came from remote.
func start(t *testing.T, accounts []Account, maxSize int64, remote net.Addr) *env {
	t.Helper()
	root := t.TempDir()
	st, err := index.OpenStore(root)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	err = st.Write(context.Background(), func(tx *index.Tx) error {
		for _, a := range accounts {
			if _, err := tx.EnsureAccount(a.Name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := localauth.LoadCertificate(root, "", "")
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(cert.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	e := &env{store: st, cert: cert, client: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	e.srv, err = New(Options{
		Store:    st,
		Accounts: accounts,
		Auth: func(remote net.Addr, username, password string) error {
			e.mu.Lock()
			e.authLog = append(e.authLog, remote.String())
			e.mu.Unlock()
			if username == testUser && password == testPass {
				return nil
			}
			return errors.New("wrong login")
		},
		TLS:     cert.TLSConfig(),
		MaxSize: maxSize,
		Nudge: func(account string) {
			e.mu.Lock()
			e.nudged = append(e.nudged, account)
			e.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	if remote != nil {
		ln = remoteListener{ln, remote}
	}
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ln) }()
	t.Cleanup(func() {
		if err := e.srv.Close(); err != nil {
			t.Error(err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve after Close: %v", err)
		}
	})
	return e
}

// queued returns the outbox of every account.
func (e *env) queued(t *testing.T) []*index.OutboxMessage {
	t.Helper()
	var ms []*index.OutboxMessage
	err := e.store.Read(context.Background(), func(tx *index.ReadTx) error {
		var err error
		ms, err = tx.OutboxList("")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func (e *env) nudges() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.nudged...)
}

// dial connects with STARTTLS, trusting the local certificate.
func (e *env) dial(t *testing.T) *smtp.Client {
	t.Helper()
	c, err := smtp.DialStartTLS(e.addr, e.client)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialPlain connects without TLS.
func (e *env) dialPlain(t *testing.T) *smtp.Client {
	t.Helper()
	c, err := smtp.Dial(e.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// code is the reply code of an SMTP error, 0 for none or another error.
func code(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}
