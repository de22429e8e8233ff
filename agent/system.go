package agent

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// cpuSampler computes CPU usage between two reads of /proc/stat.
type cpuSampler struct{ idle, total uint64 }

func (c *cpuSampler) sample() float64 {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0
	}
	fields := strings.Fields(sc.Text())
	if len(fields) < 5 || fields[0] != "cpu" {
		return 0
	}
	var total, idle uint64
	for i, s := range fields[1:] {
		v, _ := strconv.ParseUint(s, 10, 64)
		total += v
		if i == 3 || i == 4 { // idle, iowait
			idle += v
		}
	}
	dt, di := total-c.total, idle-c.idle
	first := c.total == 0
	c.total, c.idle = total, idle
	if first || dt == 0 {
		return 0
	}
	return round1(100 * float64(dt-di) / float64(dt))
}

func memoryUsage() float64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	var total, avail float64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "MemTotal:":
			total = v
		case "MemAvailable:":
			avail = v
		}
	}
	if total == 0 {
		return 0
	}
	return round1(100 * (total - avail) / total)
}

func diskUsage(dir string) float64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Blocks == 0 {
		return 0
	}
	used := float64(st.Blocks-st.Bfree) * float64(st.Bsize)
	avail := float64(st.Bavail) * float64(st.Bsize)
	if used+avail == 0 {
		return 0
	}
	return round1(100 * used / (used + avail))
}

func round1(v float64) float64 { return float64(int64(v*10+0.5)) / 10 }
