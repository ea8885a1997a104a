package agent

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/postfach/postfach/sync/imapsync"
	"github.com/postfach/postfach/sync/pop3"
)

// The control socket, <store>/.postfach/agent.sock (mode 0600, in the
// owner-only .postfach directory), lets `postfach status`, `postfach
// sync`, `postfach queue` and `postfach send` talk to a running agent.
// The protocol: the client sends one JSON line, a controlRequest; the
// agent answers one JSON line, a controlResponse, and closes the
// connection. For "enqueue" (see handoff.go) the message, Size bytes,
// follows the request's line; the agent answers {"ready":true} once it
// has read the line (or its error, which ends the exchange), and again
// once the message is queued.

// AgentStatus is a running agent's live state, the "agent" object of
// `postfach status --json`.
type AgentStatus struct {
	PID      int             `json:"pid"`
	Accounts []ServiceStatus `json:"accounts"`
	// Endpoints are the local endpoints' states (serve.go); none when
	// [serve] turns none on.
	Endpoints []EndpointStatus `json:"endpoints,omitempty"`
}

// ServiceStatus is one account's live state.
type ServiceStatus struct {
	Name  string `json:"name"`
	State string `json:"state"` // StateIdle, StateSyncing, StateOffline or StateError
	// NextRetry is when an offline account is tried again (RFC 3339), ""
	// in the other states.
	NextRetry string `json:"next_retry"`
}

// ErrNoAgent means that no agent answers on the store's control socket.
var ErrNoAgent = errors.New("no postfach run answers for this store")

type controlRequest struct {
	Op       string   `json:"op"` // "status", "sync", "outbox" (nudge the senders), "flush" or "enqueue"
	Accounts []string `json:"accounts,omitempty"`
	Force    bool     `json:"force,omitempty"`
	DryRun   bool     `json:"dry_run,omitempty"`

	// enqueue (postfach send): the message, Size bytes, follows the
	// request's line; it is queued for Account with this envelope.
	Account string   `json:"account,omitempty"`
	From    string   `json:"from,omitempty"`
	To      []string `json:"to,omitempty"`
	Size    int64    `json:"size,omitempty"`
}

type controlResponse struct {
	Error   string         `json:"error,omitempty"` // the request failed, or (sync) the joined errors of the accounts
	Status  *AgentStatus   `json:"status,omitempty"`
	Reports []wireReport   `json:"reports,omitempty"`
	Outbox  []OutboxReport `json:"outbox,omitempty"` // flush
	Queued  int64          `json:"queued,omitempty"` // enqueue: the message's outbox id
	// Ready (enqueue): the first of the two answers, before the message
	// is sent: the agent takes it. An error instead ends the exchange.
	Ready bool `json:"ready,omitempty"`
}

// wireReport is an AccountReport on the socket: the error as its text,
// the results without their per-message actions.
type wireReport struct {
	Name   string            `json:"name"`
	Result *imapsync.Result  `json:"imap,omitempty"`
	POP3   *pop3.FetchResult `json:"pop3,omitempty"`
	Err    string            `json:"error,omitempty"`
}

func toWire(r AccountReport) wireReport {
	w := wireReport{Name: r.Name, POP3: r.POP3}
	if r.Err != nil {
		w.Err = r.Err.Error()
	}
	if r.Result != nil {
		res := *r.Result
		res.Folders = make([]imapsync.FolderResult, len(r.Result.Folders))
		for i, f := range r.Result.Folders {
			f.Err, f.Actions = nil, nil // f.Err's text is in w.Err
			res.Folders[i] = f
		}
		w.Result = &res
	}
	return w
}

func (w wireReport) report() AccountReport {
	r := AccountReport{Name: w.Name, Result: w.Result, POP3: w.POP3}
	if w.Err != "" {
		r.Err = errors.New(w.Err)
	}
	return r
}

// maxSocketPath bounds a Unix socket's path: sun_path holds 108 bytes on
// Linux, 104 on macOS, with the terminating NUL.
const maxSocketPath = 104

func socketPath(root string) string { return filepath.Join(root, ".postfach", "agent.sock") }

// listenControl opens the control socket. The caller holds the store's
// lock: a socket file there is one a killed agent left.
func listenControl(root string) (net.Listener, error) {
	path := socketPath(root)
	if len(path) >= maxSocketPath {
		return nil, fmt.Errorf("control socket %s: the path is too long for a Unix socket (%d bytes, at most %d): use a store with a shorter path",
			path, len(path), maxSocketPath-1)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// serve answers the control socket until the listener is closed.
func (d *daemon) serve(ln net.Listener) {
	for {
		conn, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return // closed
		}
		if !d.addConn(conn) {
			conn.Close()
			return
		}
		go func() {
			defer d.dropConn(conn)
			d.answer(conn)
		}()
	}
}

func (d *daemon) addConn(c net.Conn) bool {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	if d.closed {
		return false
	}
	d.conns[c] = true
	return true
}

func (d *daemon) dropConn(c net.Conn) {
	c.Close()
	d.connMu.Lock()
	delete(d.conns, c)
	d.connMu.Unlock()
}

// closeConns closes the open control connections (at exit).
func (d *daemon) closeConns() {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	d.closed = true
	for c := range d.conns {
		c.Close()
	}
}

// answer reads one request from conn and writes the answer.
func (d *daemon) answer(conn net.Conn) {
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	lr := &io.LimitedReader{R: conn, N: 1 << 16} // the request's line
	br := bufio.NewReader(lr)
	line, err := br.ReadBytes('\n')
	if err != nil {
		return
	}
	conn.SetReadDeadline(time.Time{})
	var req controlRequest
	var resp controlResponse
	if err := json.Unmarshal(line, &req); err != nil {
		resp.Error = "bad request: " + err.Error()
	} else {
		switch req.Op {
		case "status":
			resp.Status = d.status()
		case "sync":
			reports, err := d.syncNow(d.ctx, req.Accounts, req.Force, req.DryRun)
			for _, r := range reports {
				resp.Reports = append(resp.Reports, toWire(r))
			}
			if err != nil {
				resp.Error = err.Error()
			}
		case "outbox":
			if err := d.outbox.nudge(req.Accounts); err != nil {
				resp.Error = err.Error()
			}
		case "flush":
			reports, err := d.outbox.flush(d.ctx, req.Accounts)
			resp.Outbox = reports
			if err != nil {
				resp.Error = err.Error()
			}
		case "enqueue":
			id, err := d.enqueue(conn, req, lr, br)
			if err != nil {
				resp.Error = err.Error()
			}
			resp.Queued = id
		default:
			resp.Error = fmt.Sprintf("unknown request %q", req.Op)
		}
	}
	b, _ := json.Marshal(resp)
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	conn.Write(append(b, '\n'))
}

// callAgent sends req to the agent of the store at root and returns its
// answer; ErrNoAgent when no agent listens there.
func callAgent(ctx context.Context, root string, req controlRequest) (*controlResponse, error) {
	var resp controlResponse
	if err := callAgentInto(ctx, root, req, nil, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// callAgentInto is callAgent with body sent after the request's line,
// decoding the answer into resp (a controlResponse, or a struct with some
// of its fields).
func callAgentInto(ctx context.Context, root string, req controlRequest, body []byte, resp any) error {
	if len(socketPath(root)) >= maxSocketPath {
		return ErrNoAgent // no agent can listen there (see listenControl)
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", socketPath(root))
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOTDIR) {
			return ErrNoAgent
		}
		return fmt.Errorf("the agent's control socket %s: %w", socketPath(root), err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	b, _ := json.Marshal(req)
	// The message follows the request's line at once (one write, no
	// round trip): an agent that cannot take it (one from before
	// "enqueue", a bad request) answers with its error instead of
	// {"ready":true} and closes the connection, which may cut this
	// write short; its answer is read all the same.
	bufs := net.Buffers{append(b, '\n'), body}
	_, werr := bufs.WriteTo(conn)
	br := bufio.NewReader(conn)
	if body != nil {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return agentFailed(ctx, root, errors.Join(werr, err))
		}
		var first struct {
			Ready bool `json:"ready"`
		}
		if err := json.Unmarshal(line, &first); err != nil || !first.Ready {
			if err := json.Unmarshal(line, resp); err != nil {
				return fmt.Errorf("the agent's control socket %s: bad answer: %w", socketPath(root), err)
			}
			return nil
		}
	}
	if werr != nil {
		return agentFailed(ctx, root, werr)
	}
	line, err := br.ReadBytes('\n')
	if err != nil {
		return agentFailed(ctx, root, err)
	}
	if err := json.Unmarshal(line, resp); err != nil {
		return fmt.Errorf("the agent's control socket %s: bad answer: %w", socketPath(root), err)
	}
	return nil
}

func agentFailed(ctx context.Context, root string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return fmt.Errorf("the agent (postfach run) on %s stopped answering: %w", root, err)
}

// AgentStatus asks the agent running on the store for its live state;
// ErrNoAgent when none runs.
func (a *Agent) AgentStatus(ctx context.Context) (*AgentStatus, error) {
	resp, err := callAgent(ctx, a.cfg.Store.Path, controlRequest{Op: "status"})
	if err != nil {
		return nil, err
	}
	if resp.Error != "" || resp.Status == nil {
		return nil, fmt.Errorf("the agent (postfach run) on %s: %s", a.cfg.Store.Path, cmp.Or(resp.Error, "no status"))
	}
	return resp.Status, nil
}

// SyncThroughAgent asks the agent running on the store to sync the named
// accounts (all when none) now, with a.Force and a.DryRun, and returns
// the reports and errors as Sync does; ErrNoAgent (and nothing else)
// when no agent runs.
func (a *Agent) SyncThroughAgent(ctx context.Context, names []string) ([]AccountReport, error) {
	resp, err := callAgent(ctx, a.cfg.Store.Path, controlRequest{Op: "sync", Accounts: names, Force: a.Force, DryRun: a.DryRun})
	if err != nil {
		return nil, err
	}
	var reports []AccountReport
	for _, w := range resp.Reports {
		reports = append(reports, w.report())
	}
	if resp.Error == "" {
		return reports, nil
	}
	var errs []error
	for _, line := range strings.Split(resp.Error, "\n") {
		errs = append(errs, errors.New(line))
	}
	return reports, errors.Join(errs...)
}
