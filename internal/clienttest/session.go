package clienttest

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/postfach/postfach/internal/corpus"
)

// The scripted sessions of the differential check live in sessions/*.imap
// (IMAP) and sessions/*.pop3 (POP3, see pop3session.go), one per file,
// and the hand-made messages they seed in sessions/messages/. The format,
// line by line:
//
//	# text            a comment; the comments before the first other line
//	                  are the session's description
//	seed FOLDER ITEM...
//	                  before the first command: APPEND into FOLDER (UTF-8,
//	                  '/' separated, created when missing; quote it with
//	                  "..." if it holds a space) the messages ITEM: N or
//	                  N-M for corpus messages (CorpusSeed, default options;
//	                  their flags and dates), or @NAME for
//	                  sessions/messages/NAME (no flags, date FileDate)
//	A: LINE           send LINE on connection A (any capital letter;
//	                  connections are opened and logged in on first use)
//	                  and read the responses up to LINE's tagged response,
//	                  or up to a continuation request ("+") the script must
//	                  answer (IDLE: "A: DONE" ends it). In LINE, {msg N} and
//	                  {file NAME} become synchronizing literals holding
//	                  corpus message N or sessions/messages/NAME.
//	A~ LINE           as A:, but every response counts in any order
//	A? TEXT           wait (up to WaitTimeout) for a response on A holding
//	                  TEXT (case-insensitive), e.g. "A? EXISTS" during IDLE
//	A! close          close A at once (no LOGOUT or QUIT); a later "A:"
//	                  opens a new connection
//	connect A         before A's first use: open A without logging in (to
//	                  send commands before authentication); in its lines
//	                  $USER and $PASS become the account's quoted
//	                  credentials, $PLAIN the base64 SASL PLAIN response
//
// The responses to a command include any read while it waits (A?) and up
// to its tagged completion (for IDLE: after DONE). A session must leave no
// command unfinished.
//
//go:embed sessions
var sessionFS embed.FS

// CorpusSeed is the corpus seed of the messages sessions name by number.
const CorpusSeed = 11

// FileDate is the internal date given to sessions/messages/ files.
var FileDate = time.Date(2024, 3, 5, 10, 20, 30, 0, time.FixedZone("", 3600))

// WaitTimeout bounds an "A?" wait and the wait for any response.
var WaitTimeout = 5 * time.Second

// Session is one scripted IMAP session.
type Session struct {
	Name        string // file name without .imap or .pop3
	POP3        bool   // a .pop3 session: its connections speak POP3 (see pop3session.go)
	Description string
	Seeds       []corpus.Message // in order, with their folders
	Steps       []Step
	NoLogin     map[string]bool // connections opened without logging in
}

// Step is one line of a session after the seeds.
type Step struct {
	Line      int    // line number in the file
	Conn      string // "A", "B", ...
	Kind      byte   // ':' send, '~' send (unordered), '?' wait, '!' close
	Text      string // the command line or the awaited text
	Literals  [][]byte
	Unordered bool
}

// Sessions returns the embedded sessions, sorted by name.
func Sessions() ([]*Session, error) {
	ents, err := fs.ReadDir(sessionFS, "sessions")
	if err != nil {
		return nil, err
	}
	var out []*Session
	for _, e := range ents {
		ext := path.Ext(e.Name())
		if e.IsDir() || ext != ".imap" && ext != ".pop3" {
			continue
		}
		data, err := sessionFS.ReadFile("sessions/" + e.Name())
		if err != nil {
			return nil, err
		}
		s, err := ParseSession(strings.TrimSuffix(e.Name(), ext), data)
		if err != nil {
			return nil, err
		}
		s.POP3 = ext == ".pop3"
		out = append(out, s)
	}
	return out, nil
}

// Message returns sessions/messages/name.
// The files have LF line ends; the message has CRLF.
func Message(name string) ([]byte, error) {
	b, err := sessionFS.ReadFile(path.Join("sessions/messages", name))
	if err != nil {
		return nil, err
	}
	b = bytes.ReplaceAll(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")), []byte("\n"), []byte("\r\n"))
	return b, nil
}

// ParseSession parses one session file (see the format above).
func ParseSession(name string, data []byte) (*Session, error) {
	s := &Session{Name: name}
	var desc []string
	inDesc := true
	for i, line := range strings.Split(string(data), "\n") {
		ln := i + 1
		line = strings.TrimRight(line, "\r")
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			if inDesc && strings.HasPrefix(trimmed, "#") {
				desc = append(desc, strings.TrimSpace(strings.TrimPrefix(trimmed, "#")))
			}
			continue
		}
		inDesc = false
		if rest, ok := strings.CutPrefix(trimmed, "connect "); ok {
			c := strings.TrimSpace(rest)
			if len(c) != 1 || c[0] < 'A' || c[0] > 'Z' {
				return nil, fmt.Errorf("%s:%d: connect takes one connection letter", name, ln)
			}
			for _, st := range s.Steps {
				if st.Conn == c {
					return nil, fmt.Errorf("%s:%d: connect %s after its first use", name, ln, c)
				}
			}
			if s.NoLogin == nil {
				s.NoLogin = map[string]bool{}
			}
			s.NoLogin[c] = true
			continue
		}
		if rest, ok := strings.CutPrefix(trimmed, "seed "); ok {
			if len(s.Steps) > 0 {
				return nil, fmt.Errorf("%s:%d: seed after the first command", name, ln)
			}
			msgs, err := parseSeed(rest)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %v", name, ln, err)
			}
			s.Seeds = append(s.Seeds, msgs...)
			continue
		}
		if len(line) < 3 || line[0] < 'A' || line[0] > 'Z' || strings.IndexByte(":~?!", line[1]) < 0 || line[2] != ' ' {
			return nil, fmt.Errorf("%s:%d: want \"seed ...\", \"connect X\", \"X: LINE\", \"X~ LINE\", \"X? TEXT\" or \"X! close\", got %q", name, ln, line)
		}
		st := Step{Line: ln, Conn: line[:1], Kind: line[1], Text: line[3:], Unordered: line[1] == '~'}
		if st.Kind == '!' && st.Text != "close" {
			return nil, fmt.Errorf("%s:%d: want \"%s! close\"", name, ln, st.Conn)
		}
		if st.Kind == ':' || st.Kind == '~' {
			text, lits, err := expandLiterals(st.Text)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: %v", name, ln, err)
			}
			st.Text, st.Literals = text, lits
		}
		s.Steps = append(s.Steps, st)
	}
	s.Description = strings.TrimSpace(strings.Join(desc, " "))
	if s.Description == "" {
		return nil, fmt.Errorf("%s: no description (start the file with # lines)", name)
	}
	return s, nil
}

// parseSeed parses `FOLDER ITEM...`.
func parseSeed(rest string) ([]corpus.Message, error) {
	var folder string
	if strings.HasPrefix(rest, `"`) {
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return nil, fmt.Errorf("unterminated folder name")
		}
		folder, rest = rest[1:end+1], rest[end+2:]
	} else {
		folder, rest, _ = strings.Cut(rest, " ")
	}
	var out []corpus.Message
	for _, it := range strings.Fields(rest) {
		if name, ok := strings.CutPrefix(it, "@"); ok {
			raw, err := Message(name)
			if err != nil {
				return nil, err
			}
			out = append(out, corpus.Message{Folder: folder, Date: FileDate, Raw: raw})
			continue
		}
		lo, hi, isRange := strings.Cut(it, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a {
			return nil, fmt.Errorf("bad seed item %q", it)
		}
		for n := a; n <= b; n++ {
			m := CorpusMessage(n)
			m.Folder = folder
			out = append(out, m)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("seed names no message")
	}
	return out, nil
}

// CorpusMessage is corpus message n as the sessions use it.
func CorpusMessage(n int) corpus.Message {
	m := corpus.At(CorpusSeed, n, corpus.Options{})
	m.Flags = append([]imap.Flag(nil), m.Flags...)
	return m
}

// expandLiterals replaces {msg N} and {file NAME} with a marker "\x00" and
// returns the literal contents in order.
func expandLiterals(line string) (string, [][]byte, error) {
	var lits [][]byte
	var out strings.Builder
	for {
		i := strings.Index(line, "{msg ")
		j := strings.Index(line, "{file ")
		if j >= 0 && (i < 0 || j < i) {
			i = j
		}
		if i < 0 {
			out.WriteString(line)
			return out.String(), lits, nil
		}
		end := strings.IndexByte(line[i:], '}')
		if end < 0 {
			return "", nil, fmt.Errorf("unterminated %q", line[i:])
		}
		kind, arg, _ := strings.Cut(line[i+1:i+end], " ")
		var lit []byte
		if kind == "msg" {
			n, err := strconv.Atoi(arg)
			if err != nil {
				return "", nil, fmt.Errorf("bad {msg %s}", arg)
			}
			lit = CorpusMessage(n).Raw
		} else {
			var err error
			if lit, err = Message(arg); err != nil {
				return "", nil, err
			}
		}
		lits = append(lits, lit)
		out.WriteString(line[:i])
		out.WriteByte(0)
		line = line[i+end+1:]
	}
}
