//go:build !linux

package httptunnel

// tcpQuickAck is 0 where TCP_QUICKACK does not exist; QuickAckListener does nothing.
const tcpQuickAck = 0
