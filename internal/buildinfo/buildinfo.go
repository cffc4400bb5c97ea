// Package buildinfo owns the version of the build every Drover binary
// reports: in `drover version`, in the micro services' INFO and in the
// drover_build_info gauge.
package buildinfo

import (
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// version may be set at link time (-ldflags "-X
// github.com/drover-run/drover/internal/buildinfo.version=1.2.3"); without
// it, the module version `go install …@v1.2.3` stamps, or the VCS revision.
var version string

// Info describes the running build.
type Info struct {
	// Version is SemVer without the leading v (micro requires it):
	// 1.2.3, 0.0.0-<date>-<rev> for a pseudo-version, 0.0.0-dev otherwise.
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go"`
}

var semver = regexp.MustCompile(`^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)

var get = sync.OnceValue(func() Info {
	info := Info{GoVersion: runtime.Version()}
	v := version
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				info.Revision = s.Value
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	info.Version = normalize(v, info.Revision)
	return info
})

// normalize turns a Go module version into SemVer micro accepts.
func normalize(v, revision string) string {
	v = strings.TrimPrefix(v, "v")
	if semver.MatchString(v) {
		return v
	}
	if len(revision) >= 12 {
		return "0.0.0-dev+" + revision[:12]
	}
	return "0.0.0-dev"
}

// Get returns the build's description.
func Get() Info { return get() }

// Version returns the build's SemVer version.
func Version() string { return get().Version }
