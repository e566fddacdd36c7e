module github.com/orderflow/orderflow/e2e

go 1.26
