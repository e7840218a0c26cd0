impl Snapshot {
    async fn export() -> Result<u32, AppError> {
        {
            let __lock_key: ::std::string::String = ::std::string::String::from(
                "exports",
            );
            match ::lock_runtime::with_lock(
                    &__lock_key,
                    &::lock_runtime::LockOptions::new(
                            ::core::time::Duration::from_millis(30000u64),
                        )
                        .wait(::core::time::Duration::from_millis(10000u64))
                        .permits(5u32)
                        .name_template("exports")
                        .function(
                            ::core::concat!(::core::module_path!(), "::", "export"),
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
                            let __lock_fake_return: Result<u32, AppError> = loop {};
                            return __lock_fake_return;
                        }
                        Ok(1)
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
                    (&::lock_runtime::__private::Probe::<Result<u32, AppError>>::new())
                        .propagate(__lock_error)
                }
            }
        }
    }
}
