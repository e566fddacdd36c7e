package postgres

// For the package's external tests.
var WriteRefused = writeRefused
