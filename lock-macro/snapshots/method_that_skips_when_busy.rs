impl Snapshot {
    async fn nightly(&self) {
        {
            let __lock_key: ::std::string::String = {
                #[allow(unused_imports)]
                use ::lock_runtime::__private::{Key as _, KeyUnsupported as _};
                ::std::format!(
                    "{}:report", (& ::lock_runtime::__private::Probe::of(& (self
                    .tenant))).key_part(& (self.tenant))
                )
            };
            match ::lock_runtime::__private::with_lock(
                    &__lock_key,
                    &::lock_runtime::LockOptions::new(
                            ::core::time::Duration::from_millis(500u64),
                        )
                        .wait(::core::time::Duration::from_millis(0u64))
                        .client("reports")
                        .name_template("{self.tenant}:report")
                        .function(
                            ::core::concat!(::core::module_path!(), "::", "nightly"),
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
                            let __lock_fake_return: () = loop {};
                            return __lock_fake_return;
                        }
                        self.build().await;
                    },
                )
                .await
            {
                ::core::result::Result::Ok(__lock_output) => __lock_output,
                ::core::result::Result::Err(
                    ::lock_runtime::__private::Failure::Before(__lock_error),
                ) => {
                    ::lock_runtime::__private::skipped(
                        "nightly",
                        &__lock_key,
                        ::core::option::Option::Some("reports"),
                        &__lock_error,
                    );
                    {
                        #[allow(unused_imports)]
                        use ::lock_runtime::__private::{Skip as _, SkipUnsupported as _};
                        (&::lock_runtime::__private::Probe::<()>::new()).skip_value()
                    }
                }
                ::core::result::Result::Err(
                    ::lock_runtime::__private::Failure::After(__lock_error),
                ) => {
                    #[allow(unused_imports)]
                    use ::lock_runtime::__private::{CanCarry as _, CannotCarry as _};
                    match (&::lock_runtime::__private::Probe::<()>::new())
                        .carry(__lock_error)
                    {
                        ::core::result::Result::Ok(__lock_carried) => __lock_carried,
                        ::core::result::Result::Err(__lock_error) => {
                            ::lock_runtime::__private::lost_after_body(
                                "nightly",
                                &__lock_key,
                                ::core::option::Option::Some("reports"),
                                &__lock_error,
                            );
                            {
                                #[allow(unused_imports)]
                                use ::lock_runtime::__private::{
                                    Skip as _, SkipUnsupported as _,
                                };
                                (&::lock_runtime::__private::Probe::<()>::new())
                                    .skip_value()
                            }
                        }
                    }
                }
            }
        }
    }
}
