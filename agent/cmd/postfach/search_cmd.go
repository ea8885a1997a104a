package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/postfach/postfach/agent"
	"github.com/postfach/postfach/configs"
	"github.com/postfach/postfach/index"
)

const searchHelp = `Search the local store. The words of QUERY (joined by spaces) are a query:

  word "a phrase" pre*       words in subject, From/To/Cc or text body (accents
                             and case folded: "Grüße" finds "grusse")
  from: to: cc: subject:     words in that header field (from:alice@example.org)
  body: attachment:NAME      words in the text body, in an attachment's file name
  folder:NAME account:NAME   the folder (folder:Lists/* and below), the account
  flag:seen|flagged|answered|draft|deleted   tag:KEYWORD
  has:attachment             mimetype:image/png (mimetype:image: any image)
  after:2024-01 before:2024-03-15 date:2024 date:2024-01..2024-03
                             dates: day, month or year, local time; the Date
                             header, else the time the message arrived
  size:>1M size:<=200k       size on disk (k, M, G: 1024, 1024², 1024³)
  a b, a AND b, a OR b, NOT a, -a, ( )

Results are newest first: date, sender, subject, account/folder and the id
that "postfach show ID" takes. --json prints one JSON object per message
and line: id, account, folder, date (RFC 3339), from, to, cc, subject,
message_id, size, flags, keywords.

The text of messages stored since the last search is indexed first, unless
an agent (postfach run) runs: it indexes new mail whenever it is idle.`

func newSearchCmd(g *globals) *cobra.Command {
	var limit, offset int
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "search [--json] [--limit N] [--offset N] QUERY...",
		Short: "Search the local store (words, from:, subject:, folder:, flag:, date:, size:, AND/OR/NOT ...)",
		Long:  searchHelp,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return errors.New("a query is needed, such as from:alice invoice")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 || offset < 0 {
				return errors.New("search: --limit and --offset take a number of messages, 0 or more")
			}
			q, err := index.ParseQuery(strings.Join(args, " "), time.Local)
			if err != nil {
				return err
			}
			cfg, a, err := g.openToSearch()
			if err != nil {
				return err
			}
			a, err = indexPendingText(cmd, a, cfg, g)
			if a != nil {
				defer a.Close()
			}
			if err != nil {
				return err
			}
			n := limit
			if n == 0 {
				n = -1 // all
			}
			var hits []index.SearchResult
			err = a.Index().Read(cmd.Context(), func(tx *index.ReadTx) error {
				hits, err = tx.SearchQuery(q, n, offset)
				return err
			})
			if err != nil {
				return err
			}
			if jsonOut {
				return writeSearchJSON(cmd.OutOrStdout(), hits)
			}
			if len(hits) == 0 {
				// On stderr: what reads stdout gets no lines, as from grep.
				what := "no messages match"
				if offset > 0 {
					what = fmt.Sprintf("no messages match past the first %d", offset)
				}
				if strings.Contains(strings.ToLower(strings.Join(args, " ")), "folder:") {
					what += " (folder names are matched as the server spells them: postfach status lists them)"
				}
				fmt.Fprintln(cmd.ErrOrStderr(), what)
				return nil
			}
			var table columns
			for _, h := range hits {
				table.add(searchDate(&h.Message).Local().Format("2006-01-02 15:04"),
					safe(clip(h.Header.From, 40)), safe(h.Header.Subject), safe(h.Account+"/"+h.FolderName), strconv.FormatInt(int64(h.ID), 10))
			}
			return table.writeTo(cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print one JSON object per message and line")
	cmd.Flags().IntVarP(&limit, "limit", "n", 50, "at most this many messages (0: all)")
	cmd.Flags().IntVar(&offset, "offset", 0, "skip this many messages first (for the next page)")
	return cmd
}

// indexPendingText indexes the text of messages stored by sync since
// (sync leaves it out of its critical path), unless an agent runs: it
// indexes them whenever it is idle, and two indexers would race for the
// same messages. a is the store opened read-only (agent.OpenReadOnly);
// the store is opened for writing only when there is text to index. It
// returns the Agent to search with, open (nil when it failed to open
// one): a, or the store opened for writing, a closed.
func indexPendingText(cmd *cobra.Command, a *agent.Agent, cfg *configs.Config, g *globals) (*agent.Agent, error) {
	var pending int
	err := a.Index().Read(cmd.Context(), func(tx *index.ReadTx) error {
		var err error
		pending, err = tx.PendingText()
		return err
	})
	if err != nil || pending == 0 || agentRuns(cmd.Context(), a) {
		return a, err
	}
	a.Close()
	if a, err = agent.Open(cfg, g.logger()); err != nil {
		return nil, err
	}
	if pending > 500 {
		fmt.Fprintf(cmd.ErrOrStderr(), "indexing the text of %d messages for search...\n", pending)
	}
	_, err = a.Index().IndexPending(cmd.Context(), cfg.Store.Path, nil)
	return a, err
}

// searchDate is the date search sorts and filters by: the Date header,
// else the internal date.
func searchDate(m *index.Message) time.Time {
	if !m.Header.Date.IsZero() {
		return m.Header.Date
	}
	return m.InternalDate
}

// clip shortens s to n characters, marking the cut with "…".
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

type searchHit struct {
	ID        int64    `json:"id"`
	Account   string   `json:"account"`
	Folder    string   `json:"folder"`
	Date      string   `json:"date"`
	From      string   `json:"from"`
	To        string   `json:"to"`
	Cc        string   `json:"cc"`
	Subject   string   `json:"subject"`
	MessageID string   `json:"message_id"`
	Size      int64    `json:"size"`
	Flags     []string `json:"flags"`
	Keywords  []string `json:"keywords"`
}

func writeSearchJSON(out io.Writer, hits []index.SearchResult) error {
	w := bufio.NewWriter(out)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	for _, h := range hits {
		flags := []string{}
		for _, f := range h.Flags.IMAP() {
			flags = append(flags, string(f))
		}
		kw := h.Keywords
		if kw == nil {
			kw = []string{}
		}
		err := enc.Encode(searchHit{
			ID: int64(h.ID), Account: h.Account, Folder: h.FolderName,
			Date: searchDate(&h.Message).Format(time.RFC3339), From: h.Header.From, To: h.Header.To, Cc: h.Header.Cc,
			Subject: h.Header.Subject, MessageID: h.Header.MessageID, Size: h.Size, Flags: flags, Keywords: kw,
		})
		if err != nil {
			return err
		}
	}
	return w.Flush()
}

func newShowCmd(g *globals) *cobra.Command {
	var raw bool
	cmd := &cobra.Command{
		Use:   "show ID [--raw]",
		Short: "Print a message found by search: its header fields decoded and its text",
		Long: `Print the message with this id (the last column of "postfach search", "id" in
its --json): From, To, Cc, Date and Subject decoded, then its text (the
text/plain parts, or the HTML reduced to text when it has none). Control
characters are shown escaped. --raw writes the message file's bytes unchanged.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || id <= 0 {
				return fmt.Errorf("show: %q is not a message id (a number from postfach search)", args[0])
			}
			_, a, err := g.openToSearch()
			if err != nil {
				return err
			}
			defer a.Close()
			data, err := readStoredMessage(cmd.Context(), a.Index(), index.MessageID(id))
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if raw {
				if sw, ok := out.(safeWriter); ok {
					out = sw.w
				}
				_, err := out.Write(data)
				return err
			}
			h, text := index.ShowText(data)
			for _, f := range []struct{ name, value string }{{"From", h.From}, {"To", h.To}, {"Cc", h.Cc}} {
				if f.value != "" {
					fmt.Fprintf(out, "%s: %s\n", f.name, safe(f.value))
				}
			}
			if !h.Date.IsZero() {
				fmt.Fprintf(out, "Date: %s\n", h.Date.Format(time.RFC1123Z))
			}
			fmt.Fprintf(out, "Subject: %s\n\n", safe(h.Subject))
			_, err = io.WriteString(out, safeText(text))
			if err == nil && text != "" && !strings.HasSuffix(text, "\n") {
				_, err = io.WriteString(out, "\n")
			}
			return err
		},
	}
	cmd.Flags().BoolVar(&raw, "raw", false, "write the message's bytes unchanged")
	return cmd
}

// readStoredMessage reads message id's file.
func readStoredMessage(ctx context.Context, st *index.Store, id index.MessageID) ([]byte, error) {
	b, err := st.OpenBody(ctx, id)
	if errors.Is(err, index.ErrNotFound) {
		return nil, fmt.Errorf("show: no message with id %d", id)
	}
	if err != nil {
		return nil, fmt.Errorf("show: message %d: %w", id, err)
	}
	defer b.Close()
	data, err := io.ReadAll(b)
	if err != nil {
		return nil, fmt.Errorf("show: message %d: %w", id, err)
	}
	return data, nil
}

// safeText is safe for a text of many lines: line ends and tabs stay.
func safeText(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		parts := strings.Split(l, "\t")
		for j, p := range parts {
			parts[j] = safe(p)
		}
		lines[i] = strings.Join(parts, "\t")
	}
	return strings.Join(lines, "\n")
}
