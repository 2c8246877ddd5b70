package app

import "github.com/arq-memory/arq/version"

// Version names the build (version.Build): the release, and the commit a
// build from a checkout was made from.
func Version() string { return version.Build() }
