//go:build !linux

package main

// platformStandIns are the stand-ins (see standIns) only Linux runs: none
// here.
var platformStandIns = map[string]func(name, dir string){}
