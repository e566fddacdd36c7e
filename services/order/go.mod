module github.com/orderflow/orderflow/services/order

go 1.26
