package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The twoway scenario's server floor: what a no-change sync costs the
// least, a fresh connection that learns every folder's state in one
// command and leaves. After each run's second no-change resync the bench
// times floorSessions such sessions against postfach's account, each on
// an idle server, and keeps their median; the report shows the median over
// the runs beside the tools' no-change medians.

// floorSessions is the number of floor sessions per run.
const floorSessions = 5

// serverFloor is the report's server floor.
type serverFloor struct {
	Runs    []time.Duration // the median of each run's sessions
	Median  time.Duration   // over Runs
	Folders int             // folders the LIST answered with STATUS
	// Ratios maps a no-change phase and a peer ("resync/mbsync") to the
	// floor over the peer's median wall time in the phase.
	Ratios map[string]float64
}

func (f *serverFloor) MarshalJSON() ([]byte, error) {
	runs := make([]float64, len(f.Runs))
	for i, d := range f.Runs {
		runs[i] = d.Seconds()
	}
	return json.Marshal(struct {
		Median   float64            `json:"median_s"`
		Runs     []float64          `json:"runs_s"`
		Sessions int                `json:"sessions_per_run"`
		Folders  int                `json:"folders"`
		Ratios   map[string]float64 `json:"ratios"`
	}{f.Median.Seconds(), runs, floorSessions, f.Folders, f.Ratios})
}

// measure times floorSessions floor sessions against srv's account, each
// once the server has settled, and adds their median to f.Runs.
func (f *serverFloor) measure(srv *dovecotServer) error {
	var ss []sample
	for range floorSessions {
		if _, err := srv.settledCPU(); err != nil {
			return err
		}
		d, folders, err := floorSession(srv.upstream())
		if err != nil {
			return err
		}
		ss = append(ss, sample{Wall: d})
		f.Folders = folders
	}
	f.Runs = append(f.Runs, medianSample(ss).Wall)
	return nil
}

// floorSession is the least an IMAP client can do to learn that nothing
// changed: dial up's server, read the greeting, LOGIN, one LIST that
// returns every folder's STATUS (UIDNEXT UIDVALIDITY MESSAGES
// HIGHESTMODSEQ), LOGOUT, each read to its tagged OK, in hand-written
// protocol lines (no client library, no process start). It returns the
// time from before the dial to LOGOUT's tagged response and the number of
// folders with a STATUS.
func floorSession(up upstream) (time.Duration, int, error) {
	t0 := time.Now()
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(up.Host, strconv.Itoa(up.Port)), 5*time.Second)
	if err != nil {
		return 0, 0, fmt.Errorf("server floor: connecting: %w", err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return 0, 0, fmt.Errorf("server floor: %w", err)
	}
	r := bufio.NewReader(conn)
	if line, err := readIMAPLine(r); err != nil {
		return 0, 0, fmt.Errorf("server floor: greeting: %w", err)
	} else if !strings.HasPrefix(line, "* OK") {
		return 0, 0, fmt.Errorf("server floor: greeting %q", line)
	}
	folders := 0
	// The user and password are plain ASCII: %q quotes them as IMAP does.
	for _, cmd := range []struct{ tag, line, step string }{
		{"a", fmt.Sprintf("LOGIN %q %q", up.User, up.Password), "LOGIN"},
		{"b", `LIST "" "*" RETURN (STATUS (UIDNEXT UIDVALIDITY MESSAGES HIGHESTMODSEQ))`, "LIST-STATUS"},
		{"c", "LOGOUT", "LOGOUT"},
	} {
		if _, err := io.WriteString(conn, cmd.tag+" "+cmd.line+"\r\n"); err != nil {
			return 0, 0, fmt.Errorf("server floor: %s: %w", cmd.step, err)
		}
		for {
			line, err := readIMAPLine(r)
			if err != nil {
				return 0, 0, fmt.Errorf("server floor: %s: %w", cmd.step, err)
			}
			if strings.HasPrefix(line, "* STATUS ") {
				folders++
			}
			if rest, ok := strings.CutPrefix(line, cmd.tag+" "); ok {
				if !strings.HasPrefix(rest, "OK") {
					return 0, 0, fmt.Errorf("server floor: %s: %q", cmd.step, line)
				}
				break
			}
		}
	}
	d := time.Since(t0)
	if folders == 0 {
		return 0, 0, fmt.Errorf("server floor: LIST-STATUS answered no STATUS")
	}
	return d, folders, nil
}

// literal matches a line that ends in a literal's length.
var literal = regexp.MustCompile(`\{(\d+)\}\r\n$`)

// readIMAPLine reads one response line, literals included, without its
// final CRLF.
func readIMAPLine(r *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		s, err := r.ReadString('\n')
		if err != nil {
			return "", err
		}
		b.WriteString(s)
		m := literal.FindStringSubmatch(s)
		if m == nil {
			return strings.TrimSuffix(b.String(), "\r\n"), nil
		}
		n, _ := strconv.Atoi(m[1])
		if _, err := io.CopyN(&b, r, int64(n)); err != nil {
			return "", err
		}
	}
}

// finish takes the median over the runs and its ratios to the peers'
// medians in the no-change phases.
func (f *serverFloor) finish(phases []*phaseResult) {
	ss := make([]sample, len(f.Runs))
	for i, d := range f.Runs {
		ss[i] = sample{Wall: d}
	}
	f.Median = medianSample(ss).Wall
	f.Ratios = map[string]float64{}
	for _, ph := range phases {
		if ph.Name != phaseResync && ph.Name != phaseResyncAgain {
			continue
		}
		for _, pr := range ph.Peers {
			if pr.Median.Wall > 0 {
				f.Ratios[ph.Name+"/"+pr.Peer] = f.Median.Seconds() / pr.Median.Wall.Seconds()
			}
		}
	}
}

// writeText writes the floor's line of the text report; peers in the
// report's order, the subject first (it is named last).
func (f *serverFloor) writeText(w io.Writer, peers []peerInfo) {
	fmt.Fprintf(w, "\nserver floor of a no-change run: %.1f ms (connect, greeting, LOGIN, LIST-STATUS of %d folders, LOGOUT; raw protocol in the bench's process, no process start)",
		float64(f.Median.Microseconds())/1000, f.Folders)
	sep := ":"
	for _, phase := range []string{phaseResync, phaseResyncAgain} {
		var parts []string
		for j := len(peers) - 1; j >= 0; j-- {
			ratio, ok := f.Ratios[phase+"/"+peers[j].Name]
			if !ok {
				continue
			}
			what := peers[j].Name + "'s"
			if len(parts) == 0 {
				what += " " + phase + " median"
			}
			parts = append(parts, fmt.Sprintf("%.2f of %s", ratio, what))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "%s %s", sep, strings.Join(parts, ", "))
			sep = ";"
		}
	}
	fmt.Fprintln(w)
}
