// Package tunneltest runs real HTTP peers for httptunnel's end-to-end tests:
// a private squid forward proxy, so RTMPT and HTTP-FLV are tested through a
// proxy that buffers, rewrites headers and tunnels CONNECT the way deployed
// ones do (STYLE.md §10: real peers over real sockets).
//
// It imports only the standard library; in particular it must not import
// rtmp or rtmp/rtmptest, because httptunnel never imports rtmp.
package tunneltest
