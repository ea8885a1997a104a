package smtptest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/postfach/postfach/internal/testenv"
)

// RelayOptions shapes a relay.
type RelayOptions struct {
	// ImplicitTLS makes Port speak TLS from the first byte (RFC 8314, as
	// port 465) instead of offering STARTTLS.
	ImplicitTLS bool
	// NoSMTPUTF8 makes the relay not offer SMTPUTF8 (smtputf8_enable = no).
	NoSMTPUTF8 bool
	// Username and Password of the one user that may relay; default
	// "relay@smtptest.invalid" and a random password.
	Username, Password string
	// Token, when set, is an OAuth2 access token the relay also accepts
	// for Username with XOAUTH2 and OAUTHBEARER (RFC 7628), which it then
	// offers beside PLAIN and LOGIN. A wrong token gets the error
	// challenge ({"status":"invalid_token",...}) and then 535.
	Token string
}

// Relay is a running private Postfix. Host, Port, CAFile, Username and
// Password are what a client needs.
type Relay struct {
	Host     string
	Port     int
	CAFile   string // PEM of the test CA that signed its certificate
	Username string
	Password string
	Dir      string // see the package doc

	opts   RelayOptions
	auth   *authServer
	policy *policyServer
	sink   *sink
	master string // the master daemon

	front   *proxy // Port
	release func() // frees Port while stopped (reservePort)

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has exited
	closed bool
}

// ErrMissing is wrapped by NewRelay's error when Postfix is not installed.
var ErrMissing = errors.New("postfix is not installed (apt-get install postfix)")

// ErrNotRoot is wrapped by NewRelay's error when the process is not root:
// Postfix's master daemon must start as root.
var ErrNotRoot = errors.New("a private Postfix must be started as root")

// FindPostfix returns the paths of the postfix command and the master
// daemon, or an error wrapping ErrMissing.
func FindPostfix() (postfix, master string, err error) {
	postfix, err = exec.LookPath("postfix")
	if err != nil {
		postfix = "/usr/sbin/postfix"
		if _, serr := os.Stat(postfix); serr != nil {
			return "", "", fmt.Errorf("smtptest: %w", ErrMissing)
		}
	}
	postconf := filepath.Join(filepath.Dir(postfix), "postconf")
	out, err := exec.Command(postconf, "-d", "-h", "daemon_directory").Output()
	if err != nil {
		return "", "", fmt.Errorf("smtptest: %s -d daemon_directory: %v (%w)", postconf, err, ErrMissing)
	}
	master = filepath.Join(strings.TrimSpace(string(out)), "master")
	if _, err := os.Stat(master); err != nil {
		return "", "", fmt.Errorf("smtptest: %v (%w)", err, ErrMissing)
	}
	return postfix, master, nil
}

// NewRelay starts a relay with its files in dir (created if missing; it
// and its parents must be searchable by the postfix user, and its path
// short: Postfix's UNIX sockets live below it). Close stops it.
func NewRelay(dir string, o RelayOptions) (*Relay, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("smtptest: %w", ErrNotRoot)
	}
	_, master, err := FindPostfix()
	if err != nil {
		return nil, err
	}
	if o.Username == "" {
		o.Username = "relay@smtptest.invalid"
	}
	if o.Password == "" {
		b := make([]byte, 12)
		rand.Read(b)
		o.Password = hex.EncodeToString(b)
	}
	r := &Relay{
		Host: "127.0.0.1", Username: o.Username, Password: o.Password,
		Dir: dir, CAFile: filepath.Join(dir, "etc", "ca.pem"),
		opts: o, master: master,
	}
	r.front = &proxy{target: filepath.Join(dir, "queue", smtpdSocket)}
	if err := r.setup(); err != nil {
		r.Close()
		return nil, err
	}
	if err := r.Start(); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// setup starts the in-process servers, writes the configuration and
// certificates, and has Postfix create its queue.
func (r *Relay) setup() error {
	var err error
	if r.auth, err = startAuthServer(r.Username, r.Password, r.opts.Token); err != nil {
		return err
	}
	if r.policy, err = startPolicyServer(); err != nil {
		return err
	}
	if r.sink, err = startSink(hostname); err != nil {
		return err
	}
	if err := r.makeDirs(); err != nil {
		return err
	}
	caPEM, certPEM, keyPEM, err := testenv.NewCertificates(testenv.TLSOn)
	if err != nil {
		return err
	}
	files := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{"ca.pem", caPEM, 0o644},
		{"cert.pem", certPEM, 0o644},
		{"key.pem", keyPEM, 0o600},
		{"main.cf", []byte(r.mainCF()), 0o644},
		{"master.cf", []byte(r.masterCF()), 0o644},
	}
	for _, f := range files {
		name := filepath.Join(r.Dir, "etc", f.name)
		if err := os.WriteFile(name, f.data, f.mode); err != nil {
			return err
		}
		// Postfix rereads a configuration file until it is 2 s old
		// (a file being edited); these are complete.
		old := time.Now().Add(-time.Minute)
		if err := os.Chtimes(name, old, old); err != nil {
			return err
		}
	}
	return nil
}

// queueDirs are the directories of the queue, as Postfix's postfix-files
// lists them (name, owned by the postfix user, group postdrop, mode).
// Making them here takes no time; "postfix check" takes seconds.
var queueDirs = []struct {
	name           string
	mailOwner, drp bool
	mode           os.FileMode
}{
	{"active", true, false, 0o700}, {"bounce", true, false, 0o700},
	{"corrupt", true, false, 0o700}, {"defer", true, false, 0o700},
	{"deferred", true, false, 0o700}, {"flush", true, false, 0o700},
	{"hold", true, false, 0o700}, {"incoming", true, false, 0o700},
	{"private", true, false, 0o700}, {"maildrop", true, true, 0o730},
	{"public", true, true, 0o710}, {"pid", false, false, 0o755},
	{"saved", true, false, 0o700}, {"trace", true, false, 0o700},
}

// makeDirs makes Dir, etc/, the queue and the data directory with
// Postfix's owners and modes.
func (r *Relay) makeDirs() error {
	pf, err := user.Lookup("postfix")
	if err != nil {
		return fmt.Errorf("smtptest: %v (%w)", err, ErrMissing)
	}
	pd, err := user.LookupGroup("postdrop")
	if err != nil {
		return fmt.Errorf("smtptest: %v (%w)", err, ErrMissing)
	}
	uid, _ := strconv.Atoi(pf.Uid)
	gid, _ := strconv.Atoi(pf.Gid)
	postdrop, _ := strconv.Atoi(pd.Gid)
	mk := func(dir string, mode os.FileMode, uid, gid int) error {
		if err := os.MkdirAll(dir, mode); err != nil {
			return err
		}
		if err := os.Chmod(dir, mode); err != nil {
			return err
		}
		return os.Chown(dir, uid, gid)
	}
	queue := filepath.Join(r.Dir, "queue")
	for _, d := range []string{r.Dir, filepath.Join(r.Dir, "etc"), queue} {
		if err := mk(d, 0o755, 0, 0); err != nil {
			return err
		}
	}
	if err := mk(filepath.Join(r.Dir, "data"), 0o700, uid, gid); err != nil {
		return err
	}
	for _, d := range queueDirs {
		u, g := 0, 0
		if d.mailOwner {
			u = uid
		}
		if d.drp {
			g = postdrop
		}
		if err := mk(filepath.Join(queue, d.name), d.mode, u, g); err != nil {
			return err
		}
	}
	return nil
}

// Start makes the relay listen on Port again (or the first time).
func (r *Relay) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return errors.New("smtptest: relay closed")
	}
	if r.cmd == nil {
		if err := r.startMaster(); err != nil {
			return err
		}
	}
	// Listen beside the reservation, then free it (reserve.go).
	if err := r.front.listen(r.Port); err != nil {
		return fmt.Errorf("smtptest: listen on %s: %v", r.addr(), err)
	}
	if r.release != nil {
		r.release()
		r.release = nil
	}
	r.Port = r.front.port()
	return r.waitFor(r.probe)
}

// Stop makes the relay stop listening: connections are refused (and open
// ones dropped) until Start. Postfix keeps running behind: what it
// accepted before is still delivered.
func (r *Relay) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || r.release != nil {
		return nil
	}
	// Reserve beside the listener, then close it (reserve.go).
	release, err := reservePort(r.Port)
	if err != nil {
		return fmt.Errorf("smtptest: keep port %d while stopped: %v", r.Port, err)
	}
	r.release = release
	r.front.close()
	return nil
}

func (r *Relay) startMaster() error {
	out, err := os.OpenFile(filepath.Join(r.Dir, "master.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer out.Close()
	cmd := exec.Command(r.master, "-c", filepath.Join(r.Dir, "etc"), "-d")
	cmd.Dir = filepath.Join(r.Dir, "queue")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("smtptest: start postfix master: %v", err)
	}
	r.cmd = cmd
	r.exited = make(chan struct{})
	go func(exited chan struct{}) {
		cmd.Wait()
		close(exited)
	}(r.exited)
	return nil
}

// waitFor polls cond until it returns nil, the master exits, or 30 s pass.
func (r *Relay) waitFor(cond func() error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cond()
		if err == nil {
			return nil
		}
		select {
		case <-r.exited:
			return fmt.Errorf("smtptest: postfix master exited: %s", r.tail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("smtptest: relay on %s: %v; log: %s", r.addr(), err, r.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// probe reads the relay's greeting.
func (r *Relay) probe() error {
	c, err := net.DialTimeout("tcp", r.addr(), time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if r.opts.ImplicitTLS {
		cfg, err := r.TLSConfig()
		if err != nil {
			return err
		}
		tc := tls.Client(c, cfg)
		if err := tc.Handshake(); err != nil {
			return err
		}
		c = tc
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220") {
		return fmt.Errorf("greeting %q", strings.TrimSpace(line))
	}
	return nil
}

func (r *Relay) addr() string { return net.JoinHostPort(r.Host, strconv.Itoa(r.Port)) }

// Addr is Host:Port.
func (r *Relay) Addr() string { return r.addr() }

// TLSConfig returns a client configuration that trusts the test CA only,
// for ServerName Host.
func (r *Relay) TLSConfig() (*tls.Config, error) {
	pemData, err := os.ReadFile(r.CAFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemData) {
		return nil, fmt.Errorf("smtptest: no certificate in %s", r.CAFile)
	}
	return &tls.Config{RootCAs: pool, ServerName: r.Host}, nil
}

// Delivered returns every message the relay has delivered so far, in
// order of arrival.
func (r *Relay) Delivered() ([]Delivered, error) {
	ds, _ := r.sink.list()
	return ds, nil
}

// WaitDelivered waits until at least n messages are delivered (the relay
// delivers after it accepts, in the background) and returns them all, or
// what arrived with ctx's error.
func (r *Relay) WaitDelivered(ctx context.Context, n int) ([]Delivered, error) {
	return r.sink.wait(ctx, n)
}

// Reject makes RCPT TO addr answer code (a 4xx or 5xx, e.g. 550 or 450)
// until cleared with Reject(addr, 0). It takes effect at once.
func (r *Relay) Reject(addr string, code int) error {
	if code != 0 && (code < 400 || code > 599) {
		return fmt.Errorf("smtptest: Reject %s: code %d is not 4xx or 5xx", addr, code)
	}
	r.policy.set(addr, code)
	return nil
}

// Log returns what Postfix logged.
func (r *Relay) Log() string {
	b, _ := os.ReadFile(filepath.Join(r.Dir, "maillog"))
	out, _ := os.ReadFile(filepath.Join(r.Dir, "master.out"))
	return string(out) + string(b)
}

// tail is the end of the log, for errors.
func (r *Relay) tail() string {
	s := strings.TrimSpace(r.Log())
	if len(s) > 2000 {
		s = "..." + s[len(s)-2000:]
	}
	return s
}

// Close stops Postfix and the in-process servers.
func (r *Relay) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	var err error
	if r.front != nil {
		r.front.close()
	}
	if r.release != nil {
		r.release()
	}
	if r.cmd != nil {
		r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.exited:
		case <-time.After(10 * time.Second):
			err = errors.New("smtptest: postfix master did not stop in 10 s")
		}
		// The master ends its process group; stragglers go now.
		signalGroup(r.cmd.Process.Pid, syscall.SIGKILL)
		<-r.exited
	}
	if r.auth != nil {
		r.auth.close()
	}
	if r.policy != nil {
		r.policy.close()
	}
	if r.sink != nil {
		r.sink.close()
	}
	return err
}
