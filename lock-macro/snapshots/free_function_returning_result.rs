impl Snapshot {
    /// Charges an order once.
    pub async fn charge(
        order_id: u64,
        customer: &Customer,
    ) -> Result<Receipt, AppError> {
        {
            let __lock_key: ::std::string::String = ::std::format!(
                "order:{}:{}", & (order_id), & (customer.id)
            );
            match ::lock_runtime::with_lock(
                    &__lock_key,
                    &::lock_runtime::LockOptions::new(
                            ::core::time::Duration::from_millis(10000u64),
                        )
                        .wait(::core::time::Duration::from_millis(90000u64)),
                    async move {
                        #[allow(
                            unreachable_code,
                            clippy::diverging_sub_expression,
                            clippy::empty_loop,
                            clippy::let_unit_value,
                            clippy::needless_return
                        )]
                        if false {
                            let __lock_fake_return: Result<Receipt, AppError> = loop {};
                            return __lock_fake_return;
                        }
                        let receipt = payments::charge(order_id).await?;
                        Ok(receipt)
                    },
                )
                .await
            {
                ::core::result::Result::Ok(__lock_output) => __lock_output,
                ::core::result::Result::Err(__lock_error) => {
                    ::lock_runtime::__private::from_lock_error(__lock_error)
                }
            }
        }
    }
}
