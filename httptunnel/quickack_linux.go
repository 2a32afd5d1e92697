package httptunnel

import "syscall"

// tcpQuickAck is the TCP_QUICKACK socket option (Linux only).
const tcpQuickAck = syscall.TCP_QUICKACK
