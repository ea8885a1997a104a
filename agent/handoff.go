package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
)

// Handing a message to the agent: `postfach send` with an agent running
// on the store does not open the index itself. It sends the message over
// the control socket (op "enqueue": the request's line and the message
// at once; the agent answers {"ready":true} once it has read the line,
// or its error instead, and then the outbox id); the agent queues it
// (index.Store.Enqueue, durable before the answer) on the index it
// holds open, and its change feed nudges the account's sender. The send process so skips SQLite's start (reading
// the schema, a connection's first commit) and the agent sends at once.
// Without an agent, the sender queues it itself (QueueMessage).

// maxHandoff bounds a message handed to the agent (postfach send
// refuses larger ones before).
const maxHandoff = 64 << 20

// handoffTimeout bounds the reading of a handed message: the sender
// writes it at once after the request's line.
const handoffTimeout = 2 * time.Minute

// ErrAgentRefused means that the agent answered a handed message with an
// error: it did not queue it (the sender may queue it itself).
var ErrAgentRefused = errors.New("the agent did not queue the message")

// refusedError is an ErrAgentRefused saying why.
type refusedError struct{ msg string }

func (e refusedError) Error() string        { return e.msg }
func (e refusedError) Is(target error) bool { return target == ErrAgentRefused }

// QueueThroughAgent hands the message (as it is to be sent, Bcc removed)
// to the agent running on cfg's store, which queues it for account and
// sends it; it returns the message's outbox id once the message is
// durable. ErrNoAgent when no agent runs, an ErrAgentRefused error when
// the agent did not queue it; any other error (the agent stopped
// answering while it had the message) leaves it unknown whether the
// message was queued.
func QueueThroughAgent(ctx context.Context, cfg *configs.Config, account string, env index.Envelope, body []byte) (index.OutboxID, error) {
	req := controlRequest{Op: "enqueue", Account: account, From: env.From, To: env.To, Size: int64(len(body))}
	// Only the two fields: a process per message decodes no more.
	var resp struct {
		Error  string `json:"error"`
		Queued int64  `json:"queued"`
	}
	if err := callAgentInto(ctx, cfg.Store.Path, req, body, &resp); err != nil {
		return 0, err
	}
	if resp.Error != "" {
		return 0, refusedError{fmt.Sprintf("the agent (postfach run) on %s: %s", cfg.Store.Path, resp.Error)}
	}
	if resp.Queued <= 0 {
		// An agent from before "enqueue" answers "unknown request".
		return 0, refusedError{fmt.Sprintf("the agent (postfach run) on %s gave no outbox id", cfg.Store.Path)}
	}
	return index.OutboxID(resp.Queued), nil
}

// enqueue queues the message that follows req on the control connection
// (br, reading through lr, which bounds it): exactly req.Size bytes, or
// nothing is queued.
func (d *daemon) enqueue(conn net.Conn, req controlRequest, lr *io.LimitedReader, br *bufio.Reader) (int64, error) {
	if req.Size <= 0 || req.Size > maxHandoff {
		return 0, fmt.Errorf("enqueue: a message of %d bytes (at most %d)", req.Size, maxHandoff)
	}
	if req.Account == "" {
		return 0, errors.New("enqueue: no account")
	}
	ready, _ := json.Marshal(controlResponse{Ready: true})
	conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(append(ready, '\n')); err != nil {
		return 0, err
	}
	conn.SetReadDeadline(time.Now().Add(handoffTimeout))
	defer conn.SetReadDeadline(time.Time{})
	// The line's bound becomes the message's rest (br may hold its first
	// bytes already).
	lr.N = max(req.Size-int64(br.Buffered()), 0)
	body := &exactReader{r: io.LimitReader(br, req.Size), left: req.Size}
	m, err := d.a.store.Enqueue(d.ctx, req.Account, index.Envelope{From: req.From, To: req.To}, body)
	if err != nil {
		// Read the rest first: a sender still writing it would take a
		// closed connection for an agent that died with the message.
		io.Copy(io.Discard, body)
		return 0, err
	}
	d.log.Debug("outbox: queued a message handed over by postfach send", "account", req.Account, "id", int64(m.ID), "size", req.Size)
	return int64(m.ID), nil
}

// exactReader reads exactly left bytes from r: an end before them is
// io.ErrUnexpectedEOF, so that a message cut short is never queued.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
