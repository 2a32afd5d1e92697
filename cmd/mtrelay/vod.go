package main

// VOD playback (httptunnel/vod): the --vod-dir flag, the file source over the VOD
// and record directories, and its wiring into RTMP play, GET /vod/{path} and the
// player page. Kept in its own file so config.go and run.go only gain a line or two.

import (
	"flag"
	"fmt"
	"net/http"
	"os"

	"github.com/rs/zerolog"

	"github.com/mtrelay/mtrelay/httptunnel/player"
	"github.com/mtrelay/mtrelay/httptunnel/vod"
	"github.com/mtrelay/mtrelay/rtmp"
)

// vodConfig is the VOD part of Config (embedded there).
type vodConfig struct {
	VODDir string // FLV files to play by name; empty: recordings only
}

// addVODFlags declares the VOD flags on fs.
func addVODFlags(fs *flag.FlagSet, c *vodConfig) {
	fs.StringVar(&c.VODDir, "vod-dir", "", "directory of FLV files played back by name (RTMP play of app/name, GET /vod/app/name.flv, /play/vod?file=app/name.flv), searched before the recordings; empty: recordings only")
}

// validateVOD checks that --vod-dir, when set, is a directory.
func (c *vodConfig) validateVOD() error {
	if c.VODDir == "" {
		return nil
	}
	fi, err := os.Stat(c.VODDir)
	if err != nil {
		return fmt.Errorf("--vod-dir: %w", err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("--vod-dir %s: not a directory", c.VODDir)
	}
	return nil
}

// vodDirs returns the directories VOD plays from: --vod-dir, then the recordings
// (--record-dir, record.go).
func vodDirs(cfg Config) []string {
	return []string{cfg.VODDir, cfg.RecordDir}
}

// newVOD returns the VOD source for cfg. HTTP requests of files (GET /vod/) are
// checked by the access chain like every viewer (hooks.go).
func newVOD(cfg Config, log zerolog.Logger, access *hookSet) (*vod.Source, error) {
	src, err := vod.New(vod.Config{Dirs: vodDirs(cfg), Access: access.ctl, AccessTimeout: access.timeout}, log)
	if err != nil {
		return nil, fmt.Errorf("vod: %w", err)
	}
	return src, nil
}

// rtmpVOD adapts a vod.Source to rtmp.VODSource.
type rtmpVOD struct{ src *vod.Source }

// Open opens the file a play of name in app asks for.
func (v rtmpVOD) Open(app, name string) (rtmp.VODFile, error) {
	f, err := v.src.OpenPlay(app, name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

var _ rtmp.VODSource = rtmpVOD{}

// playerVOD adapts a vod.Source to player.VODSource.
type playerVOD struct{ src *vod.Source }

// OpenVOD opens and indexes the file name (a path relative to a VOD directory).
func (v playerVOD) OpenVOD(name string) (player.VODFile, error) {
	f, err := v.src.OpenFile(name)
	if err != nil {
		return nil, err
	}
	return f, nil
}

var _ player.VODSource = playerVOD{}

// mountVOD serves the files over HTTP on the outer mux: GET /vod/{path...}, and the
// player page's /play/vod and /play/vod.mp4 when the page handler runs.
func mountVOD(mux *http.ServeMux, src *vod.Source, m *media) {
	src.Mount(mux)
	if m.player != nil {
		m.player.MountVOD(mux, playerVOD{src})
	}
}
