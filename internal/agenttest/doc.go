// Package agenttest drives `postfach run` from the outside, for the
// end-to-end tests of the agent (agent/cmd/postfach) and the soak bench
// (internal/bench soak). It is test harness code.
//
//   - Agent runs `postfach --config FILE run` as a child process, collects
//     its output line by line with arrival times (LogBuffer; LogLine.Key
//     tells the same event logged twice apart from two events), reads
//     `status --json` and its "agent" block, and stops it with SIGTERM
//     (timed) or SIGKILL.
//   - Model is the expected content of an account: every message the
//     harness made (unique Message-ID, bytes with LF line ends), its folder,
//     its flags, or that it is gone. Each message is owned by one side, the
//     upstream client or the local program, and only its owner changes it:
//     so no two changes race and the expected end state is exact.
//   - Server (another IMAP client) and Maildir (another program in the
//     store: files through tmp/, renames for flags, moves between folders
//     under new names, unlinks) make the changes and record them in the
//     model; their Snapshots read what each side holds by Message-ID, and
//     Model.Diff names every message lost, doubled, misplaced, with other
//     flags or other bytes.
//   - UpstreamStep and LocalStep make one random change each (the mixed
//     load); RunSteps repeats one; Poll waits for a condition.
package agenttest
