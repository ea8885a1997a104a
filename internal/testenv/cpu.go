package testenv

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPUTime is the CPU time (user + system) Dovecot's process tree has used so
// far: the live processes' own time plus what they collected from children
// they reaped. Sampled before and after a phase, the difference is what
// the server spent on it (child processes that exit and are reaped in
// between are counted through their parent).
func (d *Dovecot) CPUTime() (time.Duration, error) {
	master := d.MasterPID()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	type proc struct{ ppid, ticks int }
	procs := map[int]proc{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// The command name may hold spaces and parentheses: split after
		// the last ')'. Fields from there: state(3) ppid(4) ... utime(14)
		// stime(15) cutime(16) cstime(17).
		i := strings.LastIndexByte(string(data), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(data[i+1:]))
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		ticks := 0
		for _, j := range []int{11, 12, 13, 14} {
			n, _ := strconv.Atoi(f[j])
			ticks += n
		}
		procs[pid] = proc{ppid, ticks}
	}
	if _, ok := procs[master]; !ok {
		return 0, errors.New("dovecot master is gone")
	}
	inTree := func(pid int) bool {
		for range 64 {
			if pid == master {
				return true
			}
			p, ok := procs[pid]
			if !ok || p.ppid <= 1 {
				return false
			}
			pid = p.ppid
		}
		return false
	}
	ticks := 0
	for pid, p := range procs {
		if inTree(pid) {
			ticks += p.ticks
		}
	}
	return time.Duration(ticks) * time.Second / 100, nil // USER_HZ is 100 on Linux
}

// MasterPID is the process id of the Dovecot master process (0 when it is
// not running).
func (d *Dovecot) MasterPID() int {
	data, err := os.ReadFile(filepath.Join(d.Dir, "run", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
	return pid
}
