// Package compose holds the test that validates the repository's
// docker-compose.yml (and the Dockerfile it builds from) with the Compose
// specification's own Go loader, github.com/compose-spec/compose-go/v2,
// so that the file is checked where Docker is not installed.
package compose
