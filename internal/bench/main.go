// Command bench compares postfach with an established mail sync program on
// the same machine, the same server and the same corpus, and reports how
// long each takes and how much memory it needs.
//
// Usage:
//
//	go run ./internal/bench [SCENARIO] [flags]
//
// Scenarios:
//
//	imap   postfach vs mbsync (isync), pulling a whole IMAP account from a
//	       private Dovecot into an empty Maildir, then resyncing it (default)
//	pop3   postfach vs fetchmail, fetching a POP3 mailbox (messages kept on
//	       the server) into an empty Maildir, then fetching again with
//	       nothing new
//	twoway postfach (direction both) vs mbsync (Sync All): after one initial
//	       sync, changes on the server and in the Maildir, then one
//	       incremental sync and two no-change resyncs per run
//	migrate
//	       postfach migrate vs mbsync (two IMAP stores, Sync Pull): copy
//	       an IMAP account into an empty IMAP account on the same
//	       Dovecot, then rerun with nothing to copy; also postfach
//	       migrate from a POP3 account (-pop3, default true; postfach
//	       alone); the imap scenario's flags except -changes
//	scale  twoway at several sizes (-sizes, default 10000,100000): how each
//	       job's time and peak RSS grow with the mailbox (see scale.go)
//	serve  postfach as a server: mbsync pulls the whole account from
//	       postfach run's local IMAP endpoint and from Dovecot holding the
//	       same mail (see serve.go); flags -messages, -seed, -runs; with
//	       -clients N, then N concurrent IMAP clients for -client-time
//	       (-runs 0: the clients alone), the agent's peak RSS, CPU and
//	       latencies per operation (see serveload.go); -reuse DIR starts
//	       from a work directory kept with -keep (no new seeding);
//	       -cpuprofile and -memprofile profile the serving agent
//	send   outgoing mail: postfach send once per message plus postfach
//	       queue --flush vs msmtp once per message, to one private
//	       Postfix (STARTTLS, AUTH), until the relay delivered them all
//	       (see send.go); flags -messages, -seed, -runs, -agent (also
//	       postfach send with postfach run sending as messages come)
//	search postfach search vs notmuch (Debian's, Xapian) on the same
//	       Maildir of natural-language mail (wamerican/wngerman words,
//	       Zipf): indexing (the first postfach search vs notmuch new) and
//	       20 typical queries, median wall per query, hit counts compared
//	       by Message-ID; flags -messages (default 50000), -seed, -runs
//	       (indexing), -repeat (per query); see search.go
//	soak   postfach run alone, an hour of mixed traffic on both sides in
//	       busy and quiet halves: is it flat (memory, threads,
//	       descriptors, goroutines) and idle when nothing changes? See
//	       soak.go; flags -duration, -cycle, -interval, -rate, -messages
//
// Flags of the imap scenario:
//
//	-messages N   corpus size (default 10000); 100000 works (about 7.3 GB
//	              per copy of the real corpus: the bench refuses to start
//	              when the work directory's file system lacks room)
//	-corpus C     "real" (default): the size mix of real mail, text bodies
//	              log-normal around 6 KB (most 2-20 KB), 8%
//	              multipart/alternative, 3% with one or two attachments of
//	              100 KB-5 MB, about 79 KB per message; "small": package
//	              corpus's default mix, about 2.5 KB per message (the
//	              bench's corpus before issue 14). The report names it.
//	-seed S       corpus seed (default 1)
//	-runs R       repetitions; the report shows the median (default 3)
//	-changes K    incremental phase: K flag changes and K new messages on
//	              the server, then one resync of each peer; K is a number
//	              or a share of -messages ("1%", the default: 100 at
//	              10,000, 1,000 at 100,000); 0 skips it
//	-postfach B   use the postfach binary B instead of building
//	              ./agent/cmd/postfach
//	-dir D        create the work directory below D (default $TMPDIR)
//	-keep         keep the work directory (server, stores, configs)
//	-json         print the report as JSON instead of tables
//
// The pop3 scenario takes the same flags except -changes; the twoway
// scenario takes the same flags, -changes meaning K \Seen toggles and K new
// messages on each tool's server account (default 1% of -messages, as
// above), and has -local-changes L (default 100): L changes in each tool's
// Maildir, half (rounded up) S toggles, the rest new files. So by default
// the incremental phase is "1% of the messages changed upstream and 100
// changes locally", the job of issue 14, at any -messages.
//
// Every timed process's peak RSS is reported beside its time, in every
// phase (the per-process table; GNU time -f %M when installed).
//
// # What is measured, and how
//
// One private Dovecot (package internal/testenv) holds the corpus (package
// internal/corpus), written straight into its Maildir in one pass that
// also notes what the server must hold (a second Dovecot user of the twoway
// scenario gets the same files as hard links: no second generation, no
// second copy on disk); every folder is then
// selected and fully fetched once over IMAP, so that Dovecot's own indexing
// and the page cache are warm before any peer runs. Each run gives every
// peer a fresh, empty local store and times, per peer, the wall clock of the
// whole process (start to exit) for:
//
//   - initial: the first sync into the empty store;
//   - resync: a second sync with nothing changed;
//   - incremental: a sync after K flag changes (\Seen toggled on messages
//     spread over the folders) and K new messages (IMAP APPEND), made
//     after both peers' resyncs. The server is put back afterwards.
//
// Within a run every peer does a phase before the next phase starts, and the
// peer that goes first rotates from run to run. Before each timed process
// the bench calls sync(2), so no peer pays for another's dirty pages. The
// CPU time (user, system) and the maximum resident set size come from the
// process's rusage; the server's CPU time is the growth of the Dovecot
// process tree's CPU time across the phase, from /proc.
//
// # What is verified
//
// No time is reported for a sync whose result was not verified. After every
// timed sync, outside the timed phase (its time is logged apart), the bench
// reads the server account and the peer's Maildir, streaming and hashing
// one message at a time, and compares them with what they must hold: per
// folder (each tool's directory layout mapped to IMAP names explicitly),
// every message by Message-ID exactly once, its content (SHA-256 of the
// bytes with LF line ends, as Dovecot, postfach and the peers store them)
// and its flags D F P R S T; keywords on the server and in postfach's
// index (mbsync does not sync keywords; POP3 carries no flags or
// keywords). The expected state is the corpus itself (the server is
// checked against it after seeding), with the scenario's changes applied.
// The first differences, each naming folder, Message-ID, file or UID and
// what differs, stop the bench. postfach is also asked for its own count
// (status --json). verify.go has the details, and what each tool promises.
//
// # The pop3 scenario
//
// The corpus goes into INBOX only, and Dovecot runs with
// pop3_no_flag_updates = yes so that no POP3 session changes the mailbox
// (by default Dovecot marks retrieved messages \Seen at QUIT): every peer
// and run sees the same server. One POP3 session retrieves everything once
// to warm Dovecot and the page cache. The phases are:
//
//   - initial: the first fetch of every message into an empty Maildir;
//   - rerun: a second fetch with nothing new on the server.
//
// postfach gets a pop3 account (keep = true, folder INBOX). fetchmail gets a
// generated rcfile (keep, uidl, plaintext on loopback), FETCHMAILHOME and
// its pid file in the replica's directory, and delivers through an MDA,
// maildeliver (package ./maildeliver, built once per bench run), without
// an MTA: fetchmail runs it once per message through /bin/sh; it writes the
// message into tmp/, fsyncs the file and renames it into new/ (it does not
// fsync the directory; postfach fsyncs its files and the directory once per
// batch of 128). The MDA processes are fetchmail's children, so their CPU
// time counts as fetchmail's.
//
// After the initial phase each peer's Maildir must hold exactly the
// server's messages, byte for byte, without flags (POP3 has none), and
// after the rerun still exactly those (a message fetched again would be a
// second file); the server must still hold the corpus. fetchmail's rcfile
// says "invisible" and "no rewrite", so that it delivers each message as
// the server sent it (no Received header of its own, no change to
// addresses). postfach must also say "N new"
// and then "0 new" in its output, and count them in status --json;
// fetchmail must exit 0 (mail retrieved) and then 1 (no mail).
//
// # The twoway scenario
//
// One Dovecot holds two users, "postfach" and "mbsync", each seeded with the
// same corpus (same UIDs, flags and folders), so that the changes made for
// one tool never reach the other. postfach syncs its user with its default
// direction (both); mbsync gets a Channel with Sync All, Create Both,
// Expunge None, SyncState * and FSync yes. Each tool first syncs once into
// its empty Maildir (phase "initial (once)", not repeated). Then each run
// makes the same changes for each tool before either runs:
//
//   - on its server account: \Seen toggled (UID STORE) on K messages spread
//     over the folders by size, and K corpus messages APPENDed with their
//     flags;
//   - in its Maildir, as a mail client and a delivery agent would: on
//     ceil(L/2) other messages the S letter toggled by renaming the file
//     into cur/ (the rest of the name as the tool made it:
//     "<key>,U=<uid>:2,<flags>" for both), and floor(L/2) further corpus
//     messages written as new files into
//     the folders' new/ (through tmp/, unique names, no U= field, no info).
//
// The messages are chosen by Message-ID from the seeded ones (evenly spaced
// by UID, alternating server and local, shifted from run to run), so both
// tools get the same ones. After the changes the bench checks that they
// took (both sides read back), then times one incremental sync of each
// tool ("incremental", counted as 2K+L changes), then one sync of each
// with nothing changed ("resync"), then another ("resync again"), the tool
// going first alternating from run to run. The two no-change phases differ
// for postfach: a no-change run records per-folder listing stamps
// (maildir/stamp.go), and the next run skips reading the folders they
// vouch for, so "resync" still reads every listing after the incremental
// changes and "resync again" does not (mbsync has no such state: its two
// should match).
//
// After every timed sync the bench verifies (see above) the tool's server
// account and its Maildir against the expected state after the run's
// changes: both sides must hold exactly the expected messages, by
// Message-ID, in the expected folders, byte for byte, with the expected
// flags, and the expected keywords on the server and in postfach's index
// (mbsync does not sync keywords: its Maildir's are not compared; a
// message it copies carries its X-TUID header line, which is left out);
// it also compares the server's STATUS (MESSAGES UNSEEN) of every folder
// and postfach's status --json with the expected counts. Any difference
// stops the bench.
//
// # The migrate scenario
//
// One Dovecot holds the corpus in the user "source" (seeded and warmed as
// above) and, per tool and run, one empty destination user
// ("postfach-dest1", "mbsync-dest1", ...): no run finds another's copies.
// postfach gets a config with two IMAP accounts, "source" and "dest", and
// a store of its own, and runs postfach migrate --from source --to dest:
// it pulls the source into its store (read-only), APPENDs what the
// destination lacks and reads the destination again to verify. mbsync
// gets two IMAP stores and one Channel, Far the source and Near the
// destination, Patterns *, Create Near, Sync Pull, CopyArrivalDate yes
// (postfach keeps the internal dates too) and its SyncState in a
// directory of its own. The phases, each tool once per phase and run:
//
//   - initial: the copy of every message into the empty destination;
//   - rerun: the same command again, with nothing to copy.
//
// With -pop3 (the default) a third phase, "initial from POP3", for
// postfach alone: postfach migrate from a pop3 account (keep, folder
// INBOX) into another empty user's INBOX. Its source is the user
// "source-pop3", whose INBOX holds every message of the corpus: the
// source's files hard linked, without their flags (no second copy on
// disk), warmed with one POP3 session that retrieves everything.
//
// After every timed process the source account must still hold the corpus
// (neither tool may change it), and the tool's destination account exactly
// the source's messages, per folder, by Message-ID, each exactly once,
// byte for byte, with their flags D F P R S T; keywords as well for
// postfach, none for mbsync (which does not sync keywords; its X-TUID
// header line is left out, as above), and neither flags nor keywords after
// the copy from POP3, which carries none. postfach must also say that it
// copied every message (initial) or none (rerun) and that it verified all
// of them on the destination. A disk holds one copy of the corpus for the
// source and per run three (postfach's store, postfach's and mbsync's
// destinations), five with -pop3: at 100,000 messages of the real corpus,
// about 7.3 GB each.
//
// # Adding a peer
//
// A comparison is a list of peers (the first one, postfach, is the subject;
// ratios are subject/other). A peer makes a replica, one local copy of the
// account in a directory, and a replica can run its initial sync and its
// resync as a child process; see peer and replica in peer.go. The pop3
// scenario (pop3.go) shows how a scenario adds its own server setup and
// peers and reuses the runner and the report.
package main

import (
	"fmt"
	"os"
	"strings"
)

// scenario is one subcommand: a server setup and a set of peers.
type scenario struct {
	name, summary string
	run           func(args []string) error
}

var scenarios = []scenario{
	{"imap", "postfach vs mbsync: initial IMAP pull, no-change resync, incremental resync", runIMAP},
	{"pop3", "postfach vs fetchmail: initial POP3 fetch (keep), no-change rerun", runPOP3},
	{"twoway", "postfach vs mbsync, both ways: changes on the server and in the Maildir, incremental sync, no-change resync", runTwoway},
	{"scale", "twoway at several mailbox sizes (default 10,000 and 100,000): how each job's time and peak RSS grow", runScale},
	{"migrate", "postfach migrate vs mbsync (IMAP to IMAP): copy an account into an empty one, rerun with nothing to copy", runMigrate},
	{"serve", "mbsync pulling from postfach's local IMAP endpoint vs from Dovecot: initial pull, no-change resync", runServe},
	{"send", "postfach send ×N + queue --flush vs msmtp ×N to one Postfix relay (STARTTLS, AUTH): time until all delivered", runSend},
	{"search", "postfach search vs notmuch on the same Maildir of natural-language mail: indexing, 20 typical queries", runSearch},
	{"soak", "postfach run under mixed traffic for an hour: memory, threads, descriptors, goroutines flat; CPU near zero when idle", runSoak},
}

func main() {
	args := os.Args[1:]
	name := "imap"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if name == "help" {
		usage()
		return
	}
	for _, s := range scenarios {
		if s.name == name {
			if err := s.run(args); err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				os.Exit(1)
			}
			return
		}
	}
	fmt.Fprintf(os.Stderr, "bench: unknown scenario %q\n", name)
	usage()
	os.Exit(2)
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: go run ./internal/bench [SCENARIO] [flags]   (SCENARIO -h for its flags)")
	fmt.Fprintln(os.Stderr, "scenarios:")
	for _, s := range scenarios {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", s.name, s.summary)
	}
}
