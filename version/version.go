// Package version names ARQ's release. The OpenAPI document, the clients
// generated from it, `arq version` and /healthz all say the same number,
// so a client can tell which server it speaks to.
package version

import "runtime/debug"

// Release is the version of the API and the server, bumped with each
// release (see CHANGELOG.md). Semantic versioning: a change a client
// must adapt to bumps the major number.
const Release = "0.21.0"

// Build names the build: Release, and for a build from a checkout the
// commit it was built from (and "+dirty" for uncommitted changes), as the
// Go toolchain stamped it; a build from a tagged module says its tag.
func Build() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return Release
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	build, dirty := Release, false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			if len(s.Value) > 12 {
				s.Value = s.Value[:12]
			}
			build += "+" + s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if dirty {
		build += ".dirty"
	}
	return build
}
