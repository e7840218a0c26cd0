impl Snapshot {
    /// Charges an order once.
    pub async fn charge(
        order_id: u64,
        customer: &Customer,
    ) -> Result<Receipt, AppError> {
        {
            let __lock_key: ::std::string::String = {
                #[allow(unused_imports)]
                use ::lock_runtime::__private::{Key as _, KeyUnsupported as _};
                ::std::format!(
                    "order:{}:{}", (& ::lock_runtime::__private::Probe::of(& (order_id)))
                    .key_part(& (order_id)), (& ::lock_runtime::__private::Probe::of(&
                    (customer.id))).key_part(& (customer.id))
                )
            };
            match ::lock_runtime::with_lock(
                    &__lock_key,
                    &::lock_runtime::LockOptions::new(
                            ::core::time::Duration::from_millis(10000u64),
                        )
                        .wait(::core::time::Duration::from_millis(90000u64))
                        .name_template("order:{order_id}:{customer.id}")
                        .function(
                            ::core::concat!(::core::module_path!(), "::", "charge"),
                        ),
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
                    #[allow(unused_imports)]
                    use ::lock_runtime::__private::{
                        Propagate as _, PropagateUnsupported as _,
                    };
                    (&::lock_runtime::__private::Probe::<
                        Result<Receipt, AppError>,
                    >::new())
                        .propagate(__lock_error)
                }
            }
        }
    }
}
