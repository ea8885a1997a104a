package agenttest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Agent is a `postfach --config FILE run` child process.
type Agent struct {
	Bin, Config string
	Env         []string // the process's whole environment; nil: the test's

	cmd     *exec.Cmd
	log     *LogBuffer
	exited  chan struct{}
	waitErr error
}

// StartAgent starts `bin --config config run extra...` in the foreground,
// its stdout and stderr collected line by line (Log).
func StartAgent(bin, config string, env []string, extra ...string) (*Agent, error) {
	a := &Agent{Bin: bin, Config: config, Env: env, log: &LogBuffer{}, exited: make(chan struct{})}
	a.cmd = exec.Command(bin, append([]string{"--config", config, "run"}, extra...)...)
	a.cmd.Env = env
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	a.cmd.SysProcAttr = sysProcAttr()
	if err := a.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting postfach run: %w", err)
	}
	go func() {
		a.waitErr = a.cmd.Wait()
		close(a.exited)
	}()
	return a, nil
}

// PID is the agent's process ID.
func (a *Agent) PID() int { return a.cmd.Process.Pid }

// Exited is closed when the process has exited.
func (a *Agent) Exited() <-chan struct{} { return a.exited }

// ExitErr is how the process ended (nil: exit 0); valid after Exited.
func (a *Agent) ExitErr() error { return a.waitErr }

// Log is everything the process printed so far.
func (a *Agent) Log() *LogBuffer { return a.log }

// Stop sends SIGTERM and waits up to limit for the process to exit. It
// returns how long the exit took; past limit it kills the process and
// returns an error. A process that exited with a status other than 0 or
// 143 (the SIGTERM convention), or died of a signal, is an error too.
func (a *Agent) Stop(limit time.Duration) (time.Duration, error) {
	start := time.Now()
	select {
	case <-a.exited:
		return 0, fmt.Errorf("postfach run had exited before SIGTERM (%v)", a.waitErr)
	default:
	}
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(limit):
		a.Kill()
		return time.Since(start), fmt.Errorf("postfach run still running %v after SIGTERM; killed", limit)
	}
	took := time.Since(start)
	var ee *exec.ExitError
	if errors.As(a.waitErr, &ee) {
		ws, _ := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() || ee.ExitCode() != 128+int(syscall.SIGTERM) {
			return took, fmt.Errorf("postfach run after SIGTERM: %v", a.waitErr)
		}
	} else if a.waitErr != nil {
		return took, a.waitErr
	}
	return took, nil
}

// Kill sends SIGKILL and waits for the process. Killing an exited process
// is no error.
func (a *Agent) Kill() {
	a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.exited
}

// Status is the output of `postfach status --json`, as far as the harness
// reads it.
type Status struct {
	Accounts []struct {
		Name     string `json:"name"`
		Messages int    `json:"messages"`
		Error    string `json:"error"`
	} `json:"accounts"`
	Agent *AgentStatus `json:"agent"`
}

// AgentStatus is the "agent" block of status --json, present while an
// agent runs.
type AgentStatus struct {
	PID int `json:"pid"`
	// Goroutines is the agent's goroutine count, if it offers it (the
	// soak bench samples it); nil otherwise.
	Goroutines *int `json:"goroutines"`
	Accounts   []struct {
		Name      string `json:"name"`
		State     string `json:"state"` // idle, syncing, offline or error
		NextRetry string `json:"next_retry"`
	} `json:"accounts"`
}

// States is "name=state" per account, for messages.
func (s *AgentStatus) States() string {
	if s == nil {
		return "no agent block"
	}
	var out []string
	for _, a := range s.Accounts {
		x := a.Name + "=" + a.State
		if a.NextRetry != "" {
			x += " (next retry " + a.NextRetry + ")"
		}
		out = append(out, x)
	}
	return strings.Join(out, ", ")
}

// AllIn reports whether there is at least one account and every one is in
// state.
func (s *AgentStatus) AllIn(state string) bool {
	if s == nil || len(s.Accounts) == 0 {
		return false
	}
	for _, a := range s.Accounts {
		if a.State != state {
			return false
		}
	}
	return true
}

// Status runs `postfach --config FILE status --json`.
func (a *Agent) Status(ctx context.Context) (*Status, error) {
	return ReadStatus(ctx, a.Bin, a.Config, a.Env)
}

// ReadStatus runs `bin --config config status --json` and decodes it.
func ReadStatus(ctx context.Context, bin, config string, env []string) (*Status, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config", config, "status", "--json")
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("postfach status --json: %v: %s", err, strings.TrimSpace(stderr.String()))
	}
	var st Status
	if err := json.Unmarshal(stdout.Bytes(), &st); err != nil {
		return nil, fmt.Errorf("postfach status --json: %v\n%s", err, stdout.String())
	}
	return &st, nil
}

// WaitStatus polls status --json until cond holds for the agent's block
// (whose pid must be this process's), the process exits, or timeout
// passes. It returns the last status.
func (a *Agent) WaitStatus(timeout time.Duration, what string, cond func(*AgentStatus) bool) (*AgentStatus, error) {
	deadline := time.Now().Add(timeout)
	var last *AgentStatus
	var lastErr error
	for {
		select {
		case <-a.exited:
			return last, fmt.Errorf("postfach run exited (%v) while waiting for %s; its output:\n%s", a.waitErr, what, a.log.String())
		default:
		}
		st, err := a.Status(context.Background())
		lastErr = err
		if err == nil {
			last = st.Agent
			if last != nil && last.PID != a.PID() {
				return last, fmt.Errorf("status --json names agent pid %d, want %d", last.PID, a.PID())
			}
			if cond(last) {
				return last, nil
			}
		}
		if time.Now().After(deadline) {
			if lastErr != nil {
				return last, fmt.Errorf("no %s after %v: %v", what, timeout, lastErr)
			}
			return last, fmt.Errorf("no %s after %v: status --json says %s", what, timeout, last.States())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitIdle waits until status --json shows every account idle.
func (a *Agent) WaitIdle(timeout time.Duration) (*AgentStatus, error) {
	return a.WaitStatus(timeout, "agent with every account idle", func(s *AgentStatus) bool { return s.AllIn("idle") })
}

// LogBuffer collects a process's output by lines, each with the time it
// arrived. It is safe for concurrent use.
type LogBuffer struct {
	mu    sync.Mutex
	all   bytes.Buffer
	part  []byte
	lines []LogLine
}

// LogLine is one line of output and the time it arrived.
type LogLine struct {
	Time time.Time
	Text string
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	n := len(p)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.all.Write(p)
	now := time.Now()
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			b.part = append(b.part, p...)
			break
		}
		b.part = append(b.part, p[:i]...)
		b.lines = append(b.lines, LogLine{Time: now, Text: string(b.part)})
		b.part = b.part[:0]
		p = p[i+1:]
	}
	return n, nil
}

// String is the output so far.
func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.all.String()
}

// Lines returns the complete lines that arrived within [from, to).
func (b *LogBuffer) Lines(from, to time.Time) []LogLine {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []LogLine
	for _, l := range b.lines {
		if !l.Time.Before(from) && l.Time.Before(to) {
			out = append(out, l)
		}
	}
	return out
}

var textMsg = regexp.MustCompile(`(?:^|\s)(level|msg|account)=("(?:[^"\\]|\\.)*"|\S+)`)

// Key is what a log line says, without its time and details: level, msg
// and account of a slog JSON or text line (the line itself otherwise).
// The same event logged twice has the same key; a line per retry repeats
// its key.
func (l LogLine) Key() string {
	var j struct {
		Level   string `json:"level"`
		Msg     string `json:"msg"`
		Account string `json:"account"`
	}
	if json.Unmarshal([]byte(l.Text), &j) == nil && j.Msg != "" {
		return j.Level + " " + j.Account + ": " + j.Msg
	}
	m := textMsg.FindAllStringSubmatch(l.Text, -1)
	if len(m) == 0 {
		return l.Text
	}
	f := map[string]string{}
	for _, x := range m {
		f[x[1]] = x[2]
	}
	return f["level"] + " " + f["account"] + ": " + f["msg"]
}

// Repeated returns the keys that occur more than once in lines, with
// their counts.
func Repeated(lines []LogLine) map[string]int {
	n := map[string]int{}
	for _, l := range lines {
		n[l.Key()]++
	}
	for k, c := range n {
		if c < 2 {
			delete(n, k)
		}
	}
	return n
}
