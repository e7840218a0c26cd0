impl Snapshot {
    async fn schedule(&self, region: String, mut rounds: u32) -> Result<u64, AppError> {
        {
            let __lock_key: ::std::string::String = {
                #[allow(unused_imports)]
                use ::lock_runtime::__private::{Key as _, KeyUnsupported as _};
                ::std::format!(
                    "scheduler:{}", (& ::lock_runtime::__private::Probe::of(& (region)))
                    .key_part(& (region))
                )
            };
            match ::lock_runtime::lead(
                    &__lock_key,
                    &::lock_runtime::LeaderOptions::new(
                            ::core::time::Duration::from_millis(15000u64),
                        )
                        .lock_delay(::core::time::Duration::from_millis(2000u64))
                        .name_template("scheduler:{region}")
                        .function(
                            ::core::concat!(::core::module_path!(), "::", "schedule"),
                        ),
                    {
                        let _ = &mut rounds;
                        move || {
                            #[allow(unused_variables, unused_mut)]
                            let region = ::core::clone::Clone::clone(&region);
                            #[allow(unused_variables, unused_mut)]
                            let mut rounds = ::core::clone::Clone::clone(&rounds);
                            async move {
                                #[allow(
                                    unreachable_code,
                                    clippy::diverging_sub_expression,
                                    clippy::empty_loop,
                                    clippy::let_unit_value,
                                    clippy::needless_return
                                )]
                                if false {
                                    let __lock_fake_return: Result<u64, AppError> = loop {};
                                    return __lock_fake_return;
                                }
                                Ok(1)
                            }
                        }
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
                    (&::lock_runtime::__private::Probe::<Result<u64, AppError>>::new())
                        .propagate(__lock_error)
                }
            }
        }
    }
}
