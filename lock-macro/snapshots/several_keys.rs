impl Snapshot {
    async fn transfer(from: u32, to: u32) -> Result<(), AppError> {
        {
            let __lock_key: [::std::string::String; 2usize] = [
                {
                    #[allow(unused_imports)]
                    use ::lock_runtime::__private::{Key as _, KeyUnsupported as _};
                    ::std::format!(
                        "account:{}", (& ::lock_runtime::__private::Probe::of(& (from)))
                        .key_part(& (from))
                    )
                },
                {
                    #[allow(unused_imports)]
                    use ::lock_runtime::__private::{Key as _, KeyUnsupported as _};
                    ::std::format!(
                        "account:{}", (& ::lock_runtime::__private::Probe::of(& (to)))
                        .key_part(& (to))
                    )
                },
            ];
            match ::lock_runtime::with_locks(
                    &__lock_key,
                    &::lock_runtime::LockOptions::new(
                            ::core::time::Duration::from_millis(10000u64),
                        )
                        .wait(::core::time::Duration::from_millis(2000u64))
                        .fencing(true)
                        .name_template("account:{from}, account:{to}")
                        .function(
                            ::core::concat!(::core::module_path!(), "::", "transfer"),
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
                            let __lock_fake_return: Result<(), AppError> = loop {};
                            return __lock_fake_return;
                        }
                        Ok(())
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
                    (&::lock_runtime::__private::Probe::<Result<(), AppError>>::new())
                        .propagate(__lock_error)
                }
            }
        }
    }
}
