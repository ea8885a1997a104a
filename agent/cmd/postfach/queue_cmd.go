package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/postfach/postfach/agent"
	"github.com/postfach/postfach/index"
)

func newQueueCmd(g *globals) *cobra.Command {
	var jsonOut, flush bool
	var del []string
	cmd := &cobra.Command{
		Use:   "queue [--json] [--flush] [--delete ID]",
		Short: "List the outgoing mail waiting to be sent or failed; send it now; delete a message",
		Long: `List the messages of the outbox that wait to be sent or failed: id,
account, recipients, attempts, next attempt and the relay's last reply.

--flush sends every queued message now, due or not, and waits until each
is sent, deferred (the relay or the network said "later") or failed; a
running agent (postfach run) does it, else this command (it waits for no
postfach sync). --delete ID removes a message from the queue (repeatable).
Deletions come first, then the flush, then the listing of what is left.

--json prints {"flushed": [{"account", "sent", "deferred", "failed",
"error"}], "messages": [{"id", "account", "from", "recipients": [{"addr",
"state", "reply"}], "subject", "message_id", "size", "queued", "attempts",
"next_attempt", "last_reply", "state"}]} (times RFC 3339; "flushed" only
with --flush; state queued, sending or failed; a recipient's pending, sent
or failed).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ids := make([]index.OutboxID, len(del))
			for i, d := range del {
				n, err := strconv.ParseInt(d, 10, 64)
				if err != nil || n <= 0 {
					return fmt.Errorf("--delete %q: not a message id (postfach queue lists them)", d)
				}
				ids[i] = index.OutboxID(n)
			}
			return runQueue(cmd, g, ids, flush, jsonOut)
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	cmd.Flags().BoolVar(&flush, "flush", false, "send every queued message now and wait for the outcome")
	cmd.Flags().StringArrayVar(&del, "delete", nil, "remove the message with this `ID` from the queue")
	return cmd
}

// runQueue deletes the messages ids, flushes the queue with flush, and
// prints what is left.
func runQueue(cmd *cobra.Command, g *globals, ids []index.OutboxID, flush, jsonOut bool) error {
	// Listing the queue only reads the store.
	_, a, err := g.openStore(len(ids) == 0 && !flush)
	if err != nil {
		return err
	}
	defer a.Close()
	ctx := cmd.Context()
	out := cmd.OutOrStdout()
	for _, id := range ids {
		if err := a.Index().OutboxDelete(ctx, id); err != nil {
			if errors.Is(err, index.ErrNotFound) {
				return fmt.Errorf("no message %d in the queue", id)
			}
			return err
		}
		if !jsonOut {
			fmt.Fprintf(out, "deleted %d\n", id)
		}
	}
	var q queueJSON
	var flushErr error
	if flush {
		reports, err := a.FlushThroughAgent(ctx, nil)
		if errors.Is(err, agent.ErrNoAgent) {
			reports, err = a.FlushOutbox(ctx, nil)
		}
		q.Flushed, flushErr = reports, err
		if q.Flushed == nil {
			q.Flushed = []agent.OutboxReport{}
		}
	}
	var msgs []*index.OutboxMessage
	err = a.Index().Read(ctx, func(tx *index.ReadTx) error {
		msgs, err = tx.OutboxList("")
		return err
	})
	if err != nil {
		return err
	}
	q.Messages = []queueMessage{}
	for _, m := range msgs {
		q.Messages = append(q.Messages, toQueueJSON(m))
	}
	if jsonOut {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // Message-IDs are <...>
		if err := enc.Encode(q); err != nil {
			return err
		}
		if flushErr != nil {
			printError(cmd.ErrOrStderr(), flushErr)
			return exitError{1}
		}
		return nil
	}
	for _, r := range q.Flushed {
		if r.Error == "" {
			fmt.Fprintf(out, "%s: %d sent, %d deferred, %d failed\n", safe(r.Account), r.Sent, r.Deferred, r.Failed)
		}
	}
	printQueue(out, msgs, time.Now())
	return flushErr
}

// queueJSON is what `postfach queue --json` prints.
type queueJSON struct {
	Flushed  []agent.OutboxReport `json:"flushed,omitempty"`
	Messages []queueMessage       `json:"messages"`
}

type queueMessage struct {
	ID          int64            `json:"id"`
	Account     string           `json:"account"`
	From        string           `json:"from"`
	Recipients  []queueRecipient `json:"recipients"`
	Subject     string           `json:"subject"`
	MessageID   string           `json:"message_id"`
	Size        int64            `json:"size"`
	Queued      string           `json:"queued"`
	Attempts    int              `json:"attempts"`
	NextAttempt string           `json:"next_attempt"` // "" when failed
	LastReply   string           `json:"last_reply"`
	State       string           `json:"state"`
	// Interrupted counts the sends a crash or a lost connection cut off
	// after the relay may have taken the message: each may have made a
	// duplicate delivery to the recipients then pending.
	Interrupted int `json:"interrupted"`
}

type queueRecipient struct {
	Addr  string `json:"addr"`
	State string `json:"state"`
	Reply string `json:"reply"`
}

func toQueueJSON(m *index.OutboxMessage) queueMessage {
	q := queueMessage{
		ID: int64(m.ID), Account: m.Account, From: m.From, Recipients: []queueRecipient{},
		Subject: m.Subject, MessageID: m.MessageID, Size: m.Size, Queued: rfc3339(m.Queued),
		Attempts: m.Attempts, LastReply: m.LastReply, State: m.State, Interrupted: m.Interrupted,
	}
	if m.State != "failed" {
		q.NextAttempt = rfc3339(m.NextAttempt)
	}
	for _, r := range m.Recipients {
		q.Recipients = append(q.Recipients, queueRecipient{Addr: r.Addr, State: r.State, Reply: r.Reply})
	}
	return q
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339)
}

// printQueue prints the queue as a table.
func printQueue(w io.Writer, msgs []*index.OutboxMessage, now time.Time) {
	if len(msgs) == 0 {
		fmt.Fprintln(w, "the queue is empty")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tACCOUNT\tRECIPIENTS\tATTEMPTS\tNEXT ATTEMPT\tLAST REPLY")
	for _, m := range msgs {
		var rcpts []string
		for _, r := range m.Recipients {
			switch r.State {
			case "sent":
				continue // only who still waits, or failed
			case "failed":
				rcpts = append(rcpts, safe(r.Addr)+" (failed)")
			default:
				rcpts = append(rcpts, safe(r.Addr))
			}
		}
		next := "failed"
		switch {
		case m.State == "sending":
			next = "sending now"
		case m.State == "failed":
		case !m.NextAttempt.After(now):
			next = "now"
		default:
			next = m.NextAttempt.Local().Format("2006-01-02 15:04:05")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\n", m.ID, safe(m.Account), strings.Join(rcpts, ", "), m.Attempts, next, safe(m.LastReply))
	}
	tw.Flush()
}
