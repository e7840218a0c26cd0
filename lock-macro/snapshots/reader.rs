impl Snapshot {
    async fn report(day: u32) -> Vec<u8> {
        {
            let __lock_key: ::std::string::String = {
                #[allow(unused_imports)]
                use ::lock_runtime::__private::{Key as _, KeyUnsupported as _};
                ::std::format!(
                    "report:{}", (& ::lock_runtime::__private::Probe::of(& (day)))
                    .key_part(& (day))
                )
            };
            match ::lock_runtime::__private::with_lock(
                    &__lock_key,
                    &::lock_runtime::LockOptions::new(
                            ::core::time::Duration::from_millis(30000u64),
                        )
                        .wait(::core::time::Duration::from_millis(0u64))
                        .mode(::lock_runtime::LockMode::Read)
                        .name_template("report:{day}")
                        .function(
                            ::core::concat!(::core::module_path!(), "::", "report"),
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
                            let __lock_fake_return: Vec<u8> = loop {};
                            return __lock_fake_return;
                        }
                        Vec::new()
                    },
                )
                .await
            {
                ::core::result::Result::Ok(__lock_output) => __lock_output,
                ::core::result::Result::Err(
                    ::lock_runtime::__private::Failure::Before(__lock_error),
                ) => {
                    ::lock_runtime::__private::skipped(
                        "report",
                        &__lock_key,
                        ::core::option::Option::None,
                        &__lock_error,
                    );
                    {
                        #[allow(unused_imports)]
                        use ::lock_runtime::__private::{Skip as _, SkipUnsupported as _};
                        (&::lock_runtime::__private::Probe::<Vec<u8>>::new())
                            .skip_value()
                    }
                }
                ::core::result::Result::Err(
                    ::lock_runtime::__private::Failure::After(__lock_error),
                ) => {
                    #[allow(unused_imports)]
                    use ::lock_runtime::__private::{CanCarry as _, CannotCarry as _};
                    match (&::lock_runtime::__private::Probe::<Vec<u8>>::new())
                        .carry(__lock_error)
                    {
                        ::core::result::Result::Ok(__lock_carried) => __lock_carried,
                        ::core::result::Result::Err(__lock_error) => {
                            ::lock_runtime::__private::lost_after_body(
                                "report",
                                &__lock_key,
                                ::core::option::Option::None,
                                &__lock_error,
                            );
                            {
                                #[allow(unused_imports)]
                                use ::lock_runtime::__private::{
                                    Skip as _, SkipUnsupported as _,
                                };
                                (&::lock_runtime::__private::Probe::<Vec<u8>>::new())
                                    .skip_value()
                            }
                        }
                    }
                }
            }
        }
    }
}
