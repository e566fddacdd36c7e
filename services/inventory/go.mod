module github.com/orderflow/orderflow/services/inventory

go 1.26
