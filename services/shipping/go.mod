module github.com/orderflow/orderflow/services/shipping

go 1.26
