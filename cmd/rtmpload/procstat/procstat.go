// Package procstat reads a process's CPU time and memory from /proc (proc(5)), for the
// load generator's server figures and the RTMPT benchmark.
package procstat

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of utime and stime in /proc/PID/stat; Linux fixes it
// at 100 for user space on every architecture we run on.
const userHZ = 100

// CPU returns the user+system CPU time of pid.
func CPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may
	// contain spaces: state is field 3, utime 14, stime 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// Mem returns VmRSS and VmHWM of pid in KiB.
func Mem(pid int) (rss, hwm int64, err error) {
	v, err := status(fmt.Sprintf("/proc/%d/status", pid), "VmRSS", "VmHWM")
	return v[0], v[1], err
}

// MemParts returns RssAnon (private memory: heap, stacks) and RssFile (mapped files:
// the executable and its libraries, clean page cache the kernel can drop) of pid in
// KiB; they add up to VmRSS (with RssShmem, zero for the servers measured here).
func MemParts(pid int) (anon, file int64, err error) {
	v, err := status(fmt.Sprintf("/proc/%d/status", pid), "RssAnon", "RssFile")
	return v[0], v[1], err
}

// status returns the values (memory in KiB, the " kB" unit dropped) of keys in a
// proc(5) status file, in the order of keys; a key that is missing reads 0.
func status(path string, keys ...string) ([]int64, error) {
	out := make([]int64, len(keys))
	b, err := os.ReadFile(path)
	if err != nil {
		return out, err
	}
	for line := range strings.Lines(string(b)) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for i, key := range keys {
			if k == key {
				out[i], _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
	}
	return out, nil
}

// CtxSwitches returns the voluntary plus involuntary context switches of every
// thread of pid (/proc/PID/task/*/status); threads that already exited are not
// counted.
func CtxSwitches(pid int) (int64, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	tasks, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, t := range tasks {
		v, err := status(dir+"/"+t.Name()+"/status", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
		if err != nil {
			continue // the thread exited
		}
		sum += v[0] + v[1]
	}
	return sum, nil
}

// CoreTimes returns the busy and total time of every core from /proc/stat,
// in USER_HZ ticks. Busy is everything but idle and iowait. Comparing a
// core's busy time with the server's CPU time shows how much other
// processes took from the core the server was pinned to.
func CoreTimes() (busy, total []uint64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return nil, nil, err
	}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 6 || !strings.HasPrefix(f[0], "cpu") || f[0] == "cpu" {
			continue
		}
		var sum, idle uint64
		for i, s := range f[1:] {
			v, _ := strconv.ParseUint(s, 10, 64)
			if i >= 8 { // guest and guest_nice are already in user and nice
				break
			}
			sum += v
			if i == 3 || i == 4 { // idle, iowait
				idle += v
			}
		}
		busy = append(busy, sum-idle)
		total = append(total, sum)
	}
	return busy, total, nil
}
