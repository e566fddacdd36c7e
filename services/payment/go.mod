module github.com/orderflow/orderflow/services/payment

go 1.26
